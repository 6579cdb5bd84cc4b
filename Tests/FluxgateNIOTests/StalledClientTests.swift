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

    /// A client that opens with `text` and sends nothing more.
    func client(_ gateway: Loop, sending text: String) throws -> EmbeddedChannel {
        let client = EmbeddedChannel(loop: gateway.loop)
        try client.pipeline.syncOperations.addHandler(
            ProxyHandler(runtime: gateway.runtime, pool: gateway.connector, timeouts: nil, stats: gateway.stats, scratch: gateway.scratch))
        _ = client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2))
        try client.writeInbound(ByteBuffer(string: text))
        return client
    }

    /// Input held for a request that is not complete counts too: a head arriving in
    /// parts (a slowloris), a body read into memory before admission while the rest is
    /// awaited. Completed, they hold nothing.
    @Test func incompleteRequestsHoldTheirInput() throws {
        let gateway = try Loop(limit: 1_048_576)
        let head = try client(gateway, sending: "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + String(repeating: "s", count: 10_000))
        #expect(gateway.held >= 10_000, "a head still arriving")
        try head.writeInbound(ByteBuffer(string: "\r\n\r\n"))
        #expect(gateway.connector.opened.count == 1)
        #expect(gateway.held == 0, "complete: proxied")

        let upload = try client(gateway, sending: "PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 60000\r\n\r\n" + String(repeating: "b", count: 30_000))
        #expect(gateway.held >= 30_000, "half a buffered body")
        #expect(gateway.connector.opened.count == 1, "not admitted yet")
        try upload.writeInbound(ByteBuffer(string: String(repeating: "b", count: 30_000)))
        #expect(gateway.connector.opened.count == 2, "whole: admitted")
        #expect(gateway.held == 0)
        for channel in [head, upload] { _ = try? channel.finish() }
    }

    /// Slow uploads that each hold most of `limits.request_buffer_bytes`: past the
    /// loop's share the one that has held it longest is closed.
    @Test func theOldestSlowUploadIsClosedPastTheShare() throws {
        let gateway = try Loop(limit: 1_048_576)
        let partBody = "PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 65536\r\n\r\n" + String(repeating: "b", count: 60_000)
        var uploads: [EmbeddedChannel] = []
        for _ in 0..<40 {
            uploads.append(try client(gateway, sending: partBody))
            gateway.loop.run()
        }
        #expect(gateway.stats.traffic.stalledClientsClosed > 0)
        #expect(!uploads[0].isActive, "held longest: closed first")
        #expect(uploads.last!.isActive)
        #expect(gateway.held <= 1_048_576)
        for channel in uploads { _ = try? channel.finish() }
        #expect(gateway.held == 0)
    }
}
