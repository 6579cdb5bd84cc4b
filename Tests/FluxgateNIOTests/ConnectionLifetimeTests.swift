import FluxgateTestSupport
import FluxgateCore
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import FluxgateNIO

/// Every per-connection object is released when its connection ends, whatever way
/// it ends. A retain cycle between the client handlers and their contexts once kept
/// every closed connection alive (about 0.9 KB each); this is the test that sees it.
///
/// Each scenario opens a few hundred client connections against an in-process
/// gateway, ends them the way the scenario says, and then waits until the gateway's
/// ``LiveObjects`` counters are back to zero: no handler, no exchange, and after the
/// gateway stopped, no upstream connection may stay alive.
@Suite(.timeLimit(.minutes(2)))
struct ConnectionLifetimeTests {
    enum Scenario: String, CaseIterable, Sendable {
        /// Keep-alive requests, then the client closes.
        case proxiedKeepAlive
        /// `Connection: close`: the gateway closes after the response.
        case proxiedClose
        /// Three requests in one write, three answers, client closes.
        case pipelined
        /// Every request refused by the global bucket (503 `rate_limited`).
        case shed
        /// Admitted, upstream never answers, client leaves mid-exchange.
        case clientLeavesMidExchange
        /// Waiting in the admission queue when the client leaves.
        case clientLeavesWhileQueued
        /// Half a request head, then the client-header timeout (408).
        case headerTimeout
        /// Half a request head, then the client resets the connection.
        case resetMidHead
        /// A malformed request (400).
        case parseError
    }

    static let connectionsPerScenario = 240
    static let concurrency = 12

    @Test(arguments: Scenario.allCases)
    func everyPerConnectionObjectIsReleased(_ scenario: Scenario) async throws {
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let gatewayLoops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let upstream = try await TestUpstream.start(name: "a", group: clients)
        let config = try makeConfig(upstreams: [upstream.url]) { config in
            config.rateLimit.perClient.enabled = false
            config.rateLimit.global.enabled = scenario == .shed
            config.rateLimit.global.rate = 0.001
            config.rateLimit.global.burst = 1
            if scenario == .headerTimeout { config.timeouts.clientHeader = .milliseconds(100) }
            if scenario == .clientLeavesWhileQueued {
                // S = 1 and a queue of 1 000 with a long timeout: the first client holds
                // the slot on /hold, every other one waits in the queue.
                config.upstreams[0].maxConcurrency = 1_001
                config.admission.targetUtilization = 0.001
                config.admission.queueTimeout = .seconds(60)
            }
        }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let gateway = try GatewayServer(config: config, group: gatewayLoops, logger: logger)
        let address = try await gateway.start()

        var holder: (any Channel)?
        if scenario == .clientLeavesWhileQueued {
            let (channel, _) = try await RawClient.open(with: address, group: clients)
            try await (channel as! any SocketOptionProvider).setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            try await channel.writeAndFlush(ByteBuffer(string: "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await upstream.waitForRequestHeads(1)
            holder = channel
        }

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for index in 0..<Self.connectionsPerScenario {
                if index >= Self.concurrency { try await tasks.next() }
                tasks.addTask { try await Self.run(scenario, index: index, address: address, group: clients) }
            }
            try await tasks.waitForAll()
        }
        try await holder?.close()

        try await Self.waitUntil("client-side objects released after \(scenario)", gateway.liveObjects) {
            $0.clientHandlers == 0 && $0.exchanges == 0
        }
        // One end per exchange: no path ends one twice or never. Read until the two agree
        // with nothing alive: a connection the client reset may still sit in the gateway's
        // accept queue when every client task has returned, and be accepted, make its
        // exchange and end it only then (seen once in CI: 239 ends of 240 exchanges, read
        // between that exchange's start and its end). An exchange that never ends still
        // fails here, after the wait.
        var outcomes = await gateway.observability.read().traffic.outcomes
        try await eventuallyAsync("every exchange ended once: \(outcomes), \(gateway.liveObjects.totalExchanges) made") {
            outcomes = await gateway.observability.read().traffic.outcomes
            let live = gateway.liveObjects.counts
            return live.clientHandlers == 0 && live.exchanges == 0 && outcomes.total == gateway.liveObjects.totalExchanges
        }
        switch scenario {
        case .proxiedKeepAlive, .proxiedClose: #expect(outcomes.proxied == Self.connectionsPerScenario)
        case .pipelined: #expect(outcomes.proxied == 3 * Self.connectionsPerScenario)
        case .shed: #expect(outcomes.proxied + outcomes.shed == 2 * Self.connectionsPerScenario && outcomes.shed >= outcomes.total - 1)
        case .clientLeavesMidExchange: #expect(outcomes.clientGone == outcomes.total)
        case .headerTimeout, .parseError: #expect(outcomes.total == 0)
        case .clientLeavesWhileQueued, .resetMidHead: break  // how far a reset request got varies
        }
        try await gateway.stop()
        try await Self.waitUntil("upstream connections released after stop", gateway.liveObjects) { $0 == .zero }
        try await upstream.stop()
        try await clients.shutdownGracefully()
        try await gatewayLoops.shutdownGracefully()
    }

    static func run(_ scenario: Scenario, index: Int, address: SocketAddress, group: any EventLoopGroup) async throws {
        let get = "GET /n/\(index) HTTP/1.1\r\nHost: h\r\n\r\n"
        switch scenario {
        case .proxiedKeepAlive:
            let (channel, sink) = try await RawClient.open(with: address, group: group)
            try await channel.writeAndFlush(ByteBuffer(string: get))
            try await sink.waitFor(#"{"instance":"a"}"#, on: channel.eventLoop)
            try await channel.close()
        case .proxiedClose:
            let outcome = try await RawClient.exchange(
                "GET /n/\(index) HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: address, group: group)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK"))
        case .pipelined:
            let last = "GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            let outcome = try await RawClient.exchange(get + get + last, with: address, group: group)
            #expect(outcome.text.components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        case .shed:
            let (channel, sink) = try await RawClient.open(with: address, group: group)
            try await channel.writeAndFlush(ByteBuffer(string: get + get))
            try await sink.waitFor(#""error":"rate_limited""#, on: channel.eventLoop)
            try await channel.close()
        case .clientLeavesMidExchange:
            try await Self.sendAndReset("GET /hold HTTP/1.1\r\nHost: h\r\n\r\n", to: address, group: group)
        case .clientLeavesWhileQueued:
            try await Self.sendAndReset(get, to: address, group: group)
        case .headerTimeout:
            let (channel, sink) = try await RawClient.open(with: address, group: group)
            // On a loaded machine the 408 may come before this write: then the write fails.
            try? await channel.writeAndFlush(ByteBuffer(string: "GET /n HTTP/1.1\r\nHost:"))
            try await channel.closeFuture.get()
            #expect(sink.outcome.text.hasPrefix("HTTP/1.1 408"))
            #expect(sink.outcome.text.contains("\r\ndate: "), "RFC 9110 §6.6.1: a 4xx from a server with a clock is dated")
        case .resetMidHead:
            try await Self.sendAndReset("POST /n HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", to: address, group: group)
        case .parseError:
            let outcome = try await RawClient.exchange("GET / HTTP/1.1\r\nBad Header\r\n\r\n", with: address, group: group)
            #expect(outcome.text.hasPrefix("HTTP/1.1 400"))
        }
    }

    /// Writes `request` and resets the connection (SO_LINGER 0): the gateway sees the
    /// client vanish, not a half-close after which it would still owe an answer.
    static func sendAndReset(_ request: String, to address: SocketAddress, group: any EventLoopGroup) async throws {
        let (channel, _) = try await RawClient.open(with: address, group: group)
        try await (channel as! any SocketOptionProvider).setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        try await channel.writeAndFlush(ByteBuffer(string: request))
        try await channel.close()
    }

    /// The release happens on the gateway's loops after the close is seen there, which
    /// no client-side event reports, so the counters themselves are waited on.
    static func waitUntil(
        _ what: String, _ live: LiveObjects, sourceLocation: SourceLocation = #_sourceLocation,
        _ done: @escaping (LiveObjects.Counts) -> Bool
    ) async throws {
        try await eventually("\(what); still alive: \(live.counts)", sourceLocation: sourceLocation) { done(live.counts) }
    }
}
