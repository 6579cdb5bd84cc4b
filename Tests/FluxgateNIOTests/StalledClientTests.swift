import FluxgateCore
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import FluxgateNIO

/// `limits.stalled_client_bytes` with client connections of one loop in embedded
/// channels: what they hold while reads are paused is summed in the loop's budget,
/// and past it the connection stalled longest is closed.
struct StalledClientTests {
    typealias Connector = ProxyHandlerTests.ScriptedConnector

    final class Loop {
        let loop = EmbeddedEventLoop()
        let runtime: GatewayRuntime
        let connector: Connector
        let scratch: LoopScratch
        let stats = LoopStats()

        init(limit: Int, loops: Int = 1) throws {
            let config = try makeConfig(upstreams: ["http://127.0.0.1:9"]) { config in
                config.rateLimit.global.enabled = false
                config.rateLimit.perClient.enabled = false
                config.limits.stalledClientBytes = limit
                config.limits.maxPipelined = 1_000
            }
            runtime = try GatewayRuntime(config: config)
            connector = Connector(loop: loop, live: runtime.live)
            scratch = LoopScratch(eventLoop: loop)
            scratch.loops = loops
        }

        /// A client that sent one request (its upstream does not answer) and `queued`
        /// bytes of pipelined requests behind it, and was then read again: reads pause.
        /// The pipelined requests carry 8 KB of header each: few requests, many bytes.
        func stalledClient(queued: Int) throws -> EmbeddedChannel {
            let client = EmbeddedChannel(loop: loop)
            try client.pipeline.syncOperations.addHandler(
                ProxyHandler(runtime: runtime, pool: connector, timeouts: nil, stats: stats, scratch: scratch))
            _ = client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2))
            let next = "GET /next HTTP/1.1\r\nHost: h\r\nX-Filler: \(String(repeating: "f", count: 8_000))\r\n\r\n"
            let pipelined = String(repeating: next, count: queued / next.utf8.count)
            try client.writeInbound(ByteBuffer(string: "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n" + pipelined))
            client.read()
            return client
        }

        var held: Int { runtime.live.counts.stalledClientBytes }
    }

    @Test func theLongestStalledConnectionIsClosedPastTheLoopsShare() throws {
        let gateway = try Loop(limit: 2 * 1_048_576, loops: 2)  // this loop's share: 1 MiB
        let first = try gateway.stalledClient(queued: 400_000)
        let firstHeld = gateway.held
        #expect(firstHeld >= 400_000, "its receive buffer, while reads are paused")
        let second = try gateway.stalledClient(queued: 400_000)
        #expect(gateway.held > firstHeld)
        gateway.loop.run()
        #expect(first.isActive && second.isActive, "within the share")

        let third = try gateway.stalledClient(queued: 400_000)
        gateway.loop.run()
        #expect(!first.isActive, "stalled longest: closed")
        #expect(second.isActive && third.isActive)
        #expect(gateway.stats.traffic.stalledClientsClosed == 1)
        #expect(gateway.held <= 1_048_576)
        #expect(gateway.held == gateway.scratch.stalledClients.total)

        _ = try? second.finish()
        _ = try? third.finish()
        #expect(gateway.held == 0, "closed connections hold nothing")
        #expect(gateway.scratch.stalledClients.count == 0)
    }

    /// A client whose reads resume (its answer went out, the queue drained below the
    /// bounds) leaves the budget: it is not closed for the earlier stall.
    @Test func aConnectionThatResumesLeavesTheBudget() throws {
        let gateway = try Loop(limit: 1_048_576)
        let first = try gateway.stalledClient(queued: 400_000)
        #expect(gateway.held > 0)
        // Its requests are answered one by one until the queue is below the bounds.
        var answered = 0
        while gateway.held > 0, answered < gateway.connector.opened.count {
            try gateway.connector.answer(answered, ProxyHandlerTests.ok)
            answered += 1
        }
        #expect(gateway.held == 0, "reads resumed")
        #expect(answered > 1 && answered < 50)
        let second = try gateway.stalledClient(queued: 400_000)
        let third = try gateway.stalledClient(queued: 400_000)
        gateway.loop.run()
        #expect(first.isActive && second.isActive && third.isActive)
        #expect(gateway.stats.traffic.stalledClientsClosed == 0)
        for channel in [first, second, third] { _ = try? channel.finish() }
        #expect(gateway.held == 0)
    }

    /// `0`: no bound — held bytes are still counted.
    @Test func noBoundClosesNothing() throws {
        let gateway = try Loop(limit: 0)
        let clients = try (0..<4).map { _ in try gateway.stalledClient(queued: 400_000) }
        gateway.loop.run()
        #expect(clients.allSatisfy { $0.isActive })
        #expect(gateway.held >= 1_600_000)
        for channel in clients { _ = try? channel.finish() }
        #expect(gateway.held == 0)
    }
}
