import FluxgateTestSupport
import FluxgateCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@testable import FluxgateNIO

/// The hostile-client battery (docs/SECURITY.md): each input goes over a raw socket
/// to a running gateway whose upstream records every byte it receives; each test
/// checks the answer and that the upstream got nothing it should not.
@Suite(.timeLimit(.minutes(2)))
struct HardeningTests {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let gatewayGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    func run(
        adjust: (inout GatewayConfig) -> Void = { _ in },
        _ body: (TestUpstream, GatewayHarness) async throws -> Void
    ) async throws {
        let upstream = try await TestUpstream.start(name: "a", group: group)
        let config = try makeConfig(upstreams: [upstream.url], adjust)
        try await withGateway(config, group: gatewayGroup) { harness in
            try await body(upstream, harness)
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    func exchange(_ request: String, _ gateway: GatewayHarness) async throws -> RawClient.Outcome {
        try await RawClient.exchange(request, with: gateway.address, group: group)
    }

    func traffic(_ gateway: GatewayHarness) async -> TrafficStats {
        await gateway.gateway.observability.read().traffic
    }

    /// One client connection at a time, and no parking: an idle connection parked
    /// (after `park_after`, 5 s) is evicted by a newcomer at the cap, which is then
    /// served instead of refused — on a machine slow enough to leave the first
    /// connection idle that long, these tests waited for a refusal that never came
    /// (ParkingTests covers eviction).
    static func capOfOne(_ config: inout GatewayConfig) {
        config.limits.maxConnections = 1
        config.timeouts.parkAfter = .zero
    }

    /// One admission slot in total (S = 1).
    static func oneSlot(_ config: inout GatewayConfig) {
        config.upstreams[0].maxConcurrency = 1
        config.admission.targetUtilization = 1
        config.admission.queueTimeout = .milliseconds(100)
    }

    // MARK: Slow clients

    /// A burst of connects must be taken from the backlog faster than NIO's default of
    /// 4 per wake-up, or it overflows and clients wait out SYN-ACK retransmits (1, 3,
    /// 7 s: bench/compare.sh's c10k row). The effect is a timing one, measured by the
    /// benchmark; this keeps the setting on the listener every start path builds.
    @Test func theListenerAcceptsManyConnectionsPerWakeup() async throws {
        try await run { _, gateway in
            let listener = try #require(gateway.gateway.state.withLock { $0.channel })
            #expect(try await listener.getOption(.maxMessagesPerRead).get() == GatewayServer.acceptsPerWakeup)
            #expect(GatewayServer.acceptsPerWakeup >= 256)
        }
    }

    @Test func aStalledSmallUploadHoldsNoSlotAndGets408() async throws {
        try await run(adjust: {
            Self.oneSlot(&$0)
            $0.timeouts.clientBody = .milliseconds(400)
        }) { upstream, gateway in
            let (stalled, sink) = try await RawClient.open(with: gateway.address, group: group)
            try await stalled.writeAndFlush(ByteBuffer(string: "POST /hash HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nabc"))
            // With the only slot free, every other client is served meanwhile.
            for _ in 0..<3 {
                let other = try await exchange("GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", gateway)
                #expect(other.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(other.text)")
            }
            try await stalled.closeFuture.get()
            #expect(sink.outcome.text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
            #expect(sink.outcome.text.contains("body_timeout"))
            #expect(sink.outcome.text.lowercased().contains("connection: close"))
            #expect(!upstream.raw.contains("/hash"), "the stalled upload never reached the upstream")
            let stats = await traffic(gateway)
            #expect(stats.timeouts[ExchangeDeadlines.Expiry.clientBody.index] == 1)
        }
    }

    /// A large upload (past `request_buffer_bytes`) goes to a spool file, not to an
    /// upstream: stalled after 64 KiB it holds no slot — every other client is served
    /// — and when it resumes it reaches the upstream whole. Streamed once admitted (the
    /// gateway before spooling, HAProxy, Envoy) it held the only slot meanwhile.
    @Test func aStalledLargeUploadIsSpooledAndHoldsNoSlot() async throws {
        try await run(adjust: { Self.oneSlot(&$0) }) { upstream, gateway in
            let total = 3 * 65_536  // the upstream hashes byte by byte: kept small for debug builds
            let (uploader, sink) = try await RawClient.open(with: gateway.address, group: group)
            try await uploader.writeAndFlush(
                ByteBuffer(string: "POST /hash HTTP/1.1\r\nHost: h\r\nContent-Length: \(total)\r\nConnection: close\r\n\r\n"))
            try await uploader.writeAndFlush(Pattern.buffer(65_536))
            try await eventuallyAsync("the body is being spooled") {
                await gateway.gateway.observability.read().spool.reserved == total
            }
            for _ in 0..<3 {
                let other = try await exchange("GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", gateway)
                #expect(other.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(other.text)")
            }
            #expect(!upstream.raw.contains("/hash"), "nothing of the upload reached the upstream yet")
            for _ in 1..<3 { try await uploader.writeAndFlush(Pattern.buffer(65_536)) }
            try await uploader.closeFuture.get()
            #expect(sink.outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(sink.outcome.text.prefix(200))")
            #expect(sink.outcome.text.hasSuffix("\(total) \(Pattern.hash(totalBytes: total))"), "the whole body, byte for byte")
            let reading = await gateway.gateway.observability.read()
            #expect(reading.traffic.bodiesSpooled == 1)
            #expect(reading.spool.reserved == 0, "the file closed once sent")
        }
    }

    @Test func aStalledStreamingUploadIsCutAtTheBodyTimeoutAndFreesItsSlot() async throws {
        try await run(adjust: {
            Self.oneSlot(&$0)
            $0.limits.requestBufferBytes = 0
            $0.timeouts.clientBody = .milliseconds(300)
        }) { upstream, gateway in
            let (stalled, sink) = try await RawClient.open(with: gateway.address, group: group)
            try await stalled.writeAndFlush(ByteBuffer(string: "POST /hash HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nabc"))
            try await upstream.waitForRequestHeads(1)
            try await stalled.closeFuture.get()
            #expect(sink.outcome.text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
            // The slot came back: the next request is admitted.
            let after = try await exchange("GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", gateway)
            #expect(after.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        }
    }

    @Test func aClientThatStopsReadingIsClosedAtTheSendTimeout() async throws {
        try await run(adjust: { $0.timeouts.clientSend = .milliseconds(300) }) { upstream, gateway in
            let client = try await TestClient.connect(to: gateway.address, group: group, autoRead: false)
            _ = client.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/stream?bytes=50000000", headers: ["host": "h"]))
            // Not waiting for the upstream to find its socket full first: on a busy machine
            // the 300 ms send timeout can close the exchange before that, and the upstream
            // then writes into a closed connection and never blocks (the suite hung on that
            // wait once in ~10 runs). The gateway holding the upstream back is
            // `slowClientStopsReadsFromTheUpstream`'s subject.
            // The client reads nothing, so it cannot see the close; the gateway's count shows it.
            // Any end counts as progress here (an exact count would wait out the suite's
            // time limit if the exchange ended another way); the expectations say which.
            try await eventuallyAsync("the exchange ended") {
                let stats = await traffic(gateway)
                return stats.timeouts[ExchangeDeadlines.Expiry.clientSend.index] >= 1 || stats.endCounts.reduce(0, +) >= 1
            }
            let stats = await traffic(gateway)
            #expect(stats.timeouts[ExchangeDeadlines.Expiry.clientSend.index] == 1)
            #expect(stats.endCounts[TrafficStats.ends.firstIndex(of: "cut_off")!] == 1)
            try await eventually("the gateway let go of the connection") { gateway.gateway.openClientConnections == 0 }
            try await client.close()
        }
    }

    /// Cut at `upstream_read`, but not held against the upstream, which answered: a
    /// stream that goes quiet (server-sent events) is not a failure — until 2026-12-05
    /// idle event streams ejected healthy replicas.
    @Test func anUpstreamThatStallsMidBodyIsCutAtTheReadTimeoutButNotEjected() async throws {
        try await run(adjust: {
            $0.timeouts.upstreamRead = .milliseconds(300)
            $0.healthCheck.passive.enabled = true
            $0.healthCheck.passive.consecutiveFailures = 2
        }) { _, gateway in
            for _ in 0..<3 {
                let outcome = try await exchange("GET /stall-body HTTP/1.1\r\nHost: h\r\n\r\n", gateway)
                #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
                #expect(outcome.text.hasSuffix("partial"), "the truncated body, then the close")
            }
            let stats = await traffic(gateway)
            #expect(stats.timeouts[ExchangeDeadlines.Expiry.upstreamRead.index] == 3)
            let metrics = try await gateway.metrics()
            let held = metrics.filter { ($0.key.hasPrefix("fluxgate_upstream_ejections_total") || $0.key.hasPrefix("fluxgate_upstream_failures_total")) && $0.value > 0 }
            #expect(held.isEmpty, "\(held)")
        }
    }

    @Test func theTotalRequestCapAnswers504() async throws {
        try await run(adjust: { $0.timeouts.request = .milliseconds(300) }) { _, gateway in
            let outcome = try await exchange("GET /hold HTTP/1.1\r\nHost: h\r\n\r\n", gateway)
            #expect(outcome.text.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
            let stats = await traffic(gateway)
            #expect(stats.timeouts[ExchangeDeadlines.Expiry.request.index] == 1)
        }
    }

    // MARK: Answers, not resets

    @Test func anOversizedHeadWrittenBeforeReadingGets431NotAReset() async throws {
        try await run { upstream, gateway in
            let big = String(repeating: "x", count: 200_000)
            for _ in 0..<3 {
                let outcome = try await exchange("GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(big)\r\n\r\n", gateway)
                #expect(outcome.error == nil, "reset: \(outcome.error ?? "")")
                #expect(outcome.text.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
            }
            let line = try await exchange("GET /\(big) HTTP/1.1\r\nHost: h\r\n\r\n", gateway)
            #expect(line.error == nil, "reset: \(line.error ?? "")")
            #expect(line.text.hasPrefix("HTTP/1.1 414 URI Too Long\r\n"))
            #expect(upstream.raw.isEmpty)
        }
    }

    @Test func aRefusedBodyWrittenInFullGets413NotAReset() async throws {
        try await run(adjust: { $0.limits.maxBodyBytes = 1000 }) { upstream, gateway in
            let body = String(repeating: "b", count: 300_000)
            let outcome = try await exchange("POST /hash HTTP/1.1\r\nHost: h\r\nContent-Length: \(body.count)\r\n\r\n\(body)", gateway)
            #expect(outcome.error == nil, "reset: \(outcome.error ?? "")")
            #expect(outcome.text.hasPrefix("HTTP/1.1 413 Payload Too Large\r\n"))
            #expect(upstream.raw.isEmpty)
        }
    }

    // MARK: Upgrade and CONNECT

    @Test func anUpgradeBeyondTheTunnelCapIsAnsweredAsAnOrdinaryRequestAndEndsTheConnection() async throws {
        try await run(adjust: { $0.limits.maxTunnels = 0 }) { upstream, gateway in
            let outcome = try await exchange(
                "GET /u HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n", gateway)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(outcome.text.lowercased().contains("connection: close"), "the client learns nothing after it was served")
            #expect(outcome.text.components(separatedBy: "HTTP/1.1 ").count == 2, "one response")
            #expect(outcome.error == nil)
            #expect(upstream.received.map(\.head.uri) == ["/u"])
            #expect(!upstream.raw.lowercased().contains("upgrade"))
        }
    }

    /// A WebSocket-style upgrade: the upstream's 101 reaches the client, then bytes
    /// flow both ways untouched; the tunnel holds no admission slot, is counted apart,
    /// and gives its place back when it closes.
    @Test func anUpgradeAnsweredWith101BecomesATunnelWithoutASlot() async throws {
        let upstream = try await UpgradeEchoServer.start(group: group)
        let config = try makeConfig(upstreams: ["http://127.0.0.1:\(upstream.port)"])
        try await withGateway(config, group: gatewayGroup) { gateway in
            let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
            try await channel.writeAndFlush(ByteBuffer(string:
                "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"))
            try await sink.waitFor("\r\n\r\nwelcome", on: channel.eventLoop)
            #expect(sink.outcome.text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
            #expect(sink.outcome.text.lowercased().contains("upgrade: websocket\r\n"))
            let head = upstream.head.lowercased()
            #expect(head.contains("upgrade: websocket\r\n") && head.contains("connection: upgrade\r\n"))
            try await channel.writeAndFlush(ByteBuffer(string: "hello through the tunnel"))
            try await sink.waitFor("HELLO THROUGH THE TUNNEL", on: channel.eventLoop)
            let reading = await gateway.gateway.observability.read()
            #expect(reading.gate.inFlight == 0, "a tunnel holds no admission slot")
            #expect(reading.tunnels.open == 1 && reading.tunnels.opened == 1)
            #expect(reading.traffic.requests(route: .normal, statusClass: 1, upstream: 0) == 1, "counted as a proxied 101")
            try await channel.close()
            try await eventuallyAsync("the tunnel's place comes back") { await gateway.gateway.observability.read().tunnels.open == 0 }
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// A drain lets a tunnel run on until it closes (or `drain_timeout` passes), as it
    /// lets a request finish: nginx's old workers and HAProxy's soft stop keep
    /// WebSockets open too. Until 2026-12-05 the drain did not count tunnels, ended at
    /// once, and every WebSocket was cut at `SIGTERM` or an upgrade's handover.
    @Test func aDrainWaitsForATunnelToClose() async throws {
        let upstream = try await UpgradeEchoServer.start(group: group)
        let config = try makeConfig(upstreams: ["http://127.0.0.1:\(upstream.port)"]) { $0.drainTimeout = .seconds(20) }
        try await withGateway(config, group: gatewayGroup) { gateway in
            let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
            try await sink.waitFor("\r\n\r\nwelcome", on: channel.eventLoop)
            let draining = Task { () -> ContinuousClock.Instant in
                await gateway.gateway.drain()
                return ContinuousClock.now
            }
            // The drain is past its start once the listener refuses connections.
            try await eventuallyAsync("the listener closed") {
                guard let probe = try? await ClientBootstrap(group: group).connect(to: gateway.address).get() else { return true }
                try? await probe.close()
                return false
            }
            for loop in gatewayGroup.makeIterator() { try await loop.submit {}.get() }
            try await channel.writeAndFlush(ByteBuffer(string: "still open"))
            try await sink.waitFor("STILL OPEN", on: channel.eventLoop)
            let closed = ContinuousClock.now
            try await channel.close()
            let drained = await draining.value
            #expect(drained >= closed, "the drain ended while the tunnel was open")
            #expect(drained - closed < .seconds(10), "the drain ended with the tunnel, not at drain_timeout")
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// h2c smuggling: an upgrade to a protocol not in `limits.upgrade_protocols`
    /// (`websocket` alone by default) is served as an ordinary request — the upstream,
    /// which would grant it, never sees the `Upgrade` — so no client gets a raw tunnel
    /// to send HTTP/2 requests past admission, limits and the access log. An operator
    /// who lists the protocol gets the tunnel. Until 2026-12-05 the 101 came back.
    @Test func anUpgradeToAProtocolNotListedIsServedAsAnOrdinaryRequest() async throws {
        let upstream = try await UpgradeEchoServer.start(group: group)
        let h2c = "GET /h2c HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        for (protocols, tunnel) in [(UpgradeProtocols.websocketOnly, false), (UpgradeProtocols(["websocket", "h2c"]), true)] {
            let config = try makeConfig(upstreams: ["http://127.0.0.1:\(upstream.port)"]) { $0.limits.upgradeProtocols = protocols }
            try await withGateway(config, group: gatewayGroup) { gateway in
                // Read up to the end of the answer's head: a tunnel stays open.
                let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
                try await channel.writeAndFlush(ByteBuffer(string: h2c))
                try await sink.waitFor("\r\n\r\n", on: channel.eventLoop)
                let outcome = sink.outcome
                try? await channel.close()  // the gateway may have closed it already
                if tunnel {
                    #expect(outcome.text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(outcome.text)")
                } else {
                    #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(outcome.text)")
                    #expect(outcome.text.lowercased().contains("connection: close"))
                    let head = upstream.head.lowercased()
                    #expect(head.contains("get /h2c http/1.1\r\n"))
                    #expect(!head.contains("upgrade") && !head.contains("http2-settings"), "\(head)")
                    // A WebSocket upgrade is still a tunnel.
                    let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
                    try await channel.writeAndFlush(ByteBuffer(string: "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"))
                    try await sink.waitFor("\r\n\r\nwelcome", on: channel.eventLoop)
                    #expect(sink.outcome.text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
                    try await channel.close()
                }
            }
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// Bytes a client sends right behind its upgrade request, before the 101, belong
    /// to the new protocol: they reach the upstream once the tunnel opens (before the
    /// gateway parsed its own requests, they were dropped).
    @Test func bytesSentBeforeThe101GoThroughTheTunnel() async throws {
        let upstream = try await UpgradeEchoServer.start(group: group)
        let config = try makeConfig(upstreams: ["http://127.0.0.1:\(upstream.port)"])
        try await withGateway(config, group: gatewayGroup) { gateway in
            let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
            try await channel.writeAndFlush(ByteBuffer(string:
                "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly bytes"))
            try await sink.waitFor("EARLY BYTES", on: channel.eventLoop)
            #expect(sink.outcome.text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
            #expect(!upstream.head.contains("early"), "not part of the forwarded head")
            try await channel.close()
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    @Test func anIdleTunnelIsClosedAndTheCapHolds() async throws {
        let upstream = try await UpgradeEchoServer.start(group: group)
        let config = try makeConfig(upstreams: ["http://127.0.0.1:\(upstream.port)"]) {
            $0.timeouts.tunnelIdle = .seconds(2)  // long enough that the cap check below runs while the tunnel is open
            $0.limits.maxTunnels = 1
        }
        let upgrade = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        try await withGateway(config, group: gatewayGroup) { gateway in
            let (first, sink) = try await RawClient.open(with: gateway.address, group: group)
            try await first.writeAndFlush(ByteBuffer(string: upgrade))
            try await sink.waitFor("welcome", on: first.eventLoop)
            // The cap is reached: the next upgrade goes upstream without its Upgrade.
            let second = try await exchange(upgrade, gateway)
            #expect(second.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(second.text)")
            #expect(second.text.lowercased().contains("connection: close"))
            // Nothing moves on the first tunnel: the idle timeout closes it.
            try await first.closeFuture.get()
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// Tunnels ended by the client or by the idle timeout leave
    /// nothing behind: every handler, exchange and upstream connection is released and
    /// every tunnel place comes back (the leak test of docs/RELIABILITY.md, for tunnels).
    @Test func tunnelsLeaveNothingBehind() async throws {
        let upstream = try await UpgradeEchoServer.start(group: group)
        let upgrade = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        // Closed by the client after an exchange of bytes (default idle timeout: no race),
        // then left idle until the gateway closes them (a short idle timeout, no bytes sent).
        for idle in [false, true] {
            let config = try makeConfig(upstreams: ["http://127.0.0.1:\(upstream.port)"]) {
                if idle { $0.timeouts.tunnelIdle = .milliseconds(100) }
            }
            try await withGateway(config, group: gatewayGroup) { gateway in
                for round in 0..<30 {
                    let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
                    try await channel.writeAndFlush(ByteBuffer(string: upgrade))
                    try await sink.waitFor("welcome", on: channel.eventLoop)
                    if idle {
                        try await channel.closeFuture.get()
                    } else {
                        try await channel.writeAndFlush(ByteBuffer(string: "x\(round)"))
                        try await sink.waitFor("X\(round)", on: channel.eventLoop)
                        try await channel.close()
                    }
                }
                try await eventuallyAsync("every tunnel released") {
                    let reading = await gateway.gateway.observability.read()
                    return reading.tunnels.open == 0 && gateway.gateway.liveObjects.counts == .zero
                }
                #expect(await gateway.gateway.observability.read().tunnels.opened == 30)
            }
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    @Test func connectIsRefusedWith405() async throws {
        try await run { upstream, gateway in
            let outcome = try await exchange("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", gateway)
            #expect(outcome.text.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"))
            #expect(outcome.text.lowercased().contains("allow: get"))
            #expect(upstream.raw.isEmpty)
        }
    }

    /// TRACE is answered 405 by default, as nginx answers it: the upstream would echo
    /// the request with every header the gateway added. `limits.allow_trace` forwards it.
    @Test(arguments: [false, true]) func traceIsRefusedUnlessAllowed(allowed: Bool) async throws {
        try await run(adjust: { $0.limits.allowTrace = allowed }) { upstream, gateway in
            let outcome = try await exchange("TRACE /t HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", gateway)
            if allowed {
                #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(outcome.text)")
                #expect(upstream.raw.hasPrefix("TRACE /t HTTP/1.1\r\n"))
            } else {
                #expect(outcome.text.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"), "\(outcome.text)")
                #expect(outcome.text.lowercased().contains("allow: get"))
                #expect(outcome.text.contains(#""error":"trace_not_allowed""#))
                #expect(upstream.raw.isEmpty)
            }
        }
    }

    // MARK: No reuse while in doubt

    @Test func bytesAnUpstreamSendsOutsideAResponseNeverReachTheNextRequest() async throws {
        try await run { _, gateway in
            let outcome = try await exchange(
                "HEAD /head-then-extra HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", gateway)
            #expect(!outcome.text.contains("SMUGGLED"))
            #expect(outcome.text.hasSuffix(#"{"instance":"a"}"#), "\(outcome.text)")
        }
    }

    /// CL.0-style desync: an upstream that answers before the request body was all
    /// sent must not get the rest of that body read as its next request. The
    /// connection is not pooled, and the client's connection ends after the answer.
    @Test func anEarlyAnswerRetiresBothConnections() async throws {
        try await run(adjust: { $0.limits.requestBufferBytes = 0 }) { upstream, gateway in
            let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
            try await channel.writeAndFlush(ByteBuffer(string: "POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: 60\r\n\r\nabc"))
            try await sink.waitFor("early", on: channel.eventLoop)
            // The rest of the body looks like a request; it must never reach the upstream as one.
            try? await channel.writeAndFlush(ByteBuffer(string: "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await channel.closeFuture.get()
            #expect(sink.outcome.text.lowercased().contains("connection: close"))
            let next = try await exchange("GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", gateway)
            #expect(next.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(upstream.received.map(\.head.uri).filter { $0 != "/early" } == ["/next"])
            #expect(upstream.acceptedConnections == 2, "the early answer's connection was not reused")
        }
    }

    // MARK: Header policy

    @Test func hostRules() async throws {
        try await run { upstream, gateway in
            let missing = try await exchange("GET /x HTTP/1.1\r\n\r\n", gateway)
            #expect(missing.text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
            #expect(missing.text.contains("bad_host"))
            let twice = try await exchange("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", gateway)
            #expect(twice.text.contains("bad_host"))
            let disagreeing = try await exchange("GET http://evil.example/x HTTP/1.1\r\nHost: good.example\r\n\r\n", gateway)
            #expect(disagreeing.text.contains("bad_host"))
            #expect(upstream.raw.isEmpty)
            let agreeing = try await exchange(
                "GET http://good.example/x HTTP/1.1\r\nHost: good.example\r\nConnection: close\r\n\r\n", gateway)
            #expect(agreeing.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            let http10 = try await exchange("GET /x HTTP/1.0\r\n\r\n", gateway)
            #expect(http10.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            // The scheme's default port is the same as none (HAProxy agrees; refused before 2026-12-05).
            for (target, host) in [("http://good.example:80/y", "good.example"), ("http://good.example/z", "Good.Example:80")] {
                let outcome = try await exchange("GET \(target) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n", gateway)
                #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(target) with Host \(host)")
            }
        }
    }

    @Test func anAbsoluteFormTargetGoesUpstreamInOriginForm() async throws {
        try await run { upstream, gateway in
            for target in ["http://h/x?a=1", "HTTP://h:80/x/y", "http://h?q", "http://h", "/plain?k"] {
                let outcome = try await exchange("GET \(target) HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", gateway)
                #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(target)")
            }
            // RFC 9112 §3.2.1: the path and query only, as nginx and Envoy send them; Host goes on as sent.
            #expect(upstream.received.map(\.head.uri) == ["/x?a=1", "/x/y", "/?q", "/", "/plain?k"])
            #expect(upstream.received.allSatisfy { $0.head.headers["host"] == ["h"] })
        }
    }

    @Test func pathsClimbingAboveTheRootAre400() async throws {
        try await run { upstream, gateway in
            for target in ["/../etc/passwd", "/a/../../b", "/%2e%2e/x"] {
                let outcome = try await exchange("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n", gateway)
                #expect(outcome.text.contains("bad_path"), "\(target)")
            }
            #expect(upstream.raw.isEmpty)
        }
    }

    @Test func underscoreNamesAreDroppedAndForwardingIsNotBelievedFromStrangers() async throws {
        try await run { upstream, gateway in
            let outcome = try await exchange(
                "GET /x HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX-Ok: 1\r\nConnection: close\r\n\r\n",
                gateway)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(!upstream.raw.contains("6.6.6.6"))
            #expect(!upstream.raw.contains("7.7.7.7"))
            #expect(upstream.raw.lowercased().contains("x-forwarded-for: 127.0.0.1\r\n"))
            #expect(upstream.raw.contains("X-Ok: 1"))
        }
    }

    /// A dual-stack listener (`[::]`) sees an IPv4 client as `::ffff:127.0.0.1`; the
    /// gateway forwards and keys it as 127.0.0.1, the form the same client has on an
    /// IPv4 listener (as Envoy's `ipv4_compat` listeners do).
    @Test func anIPv4ClientOfADualStackListenerIsShownByItsIPv4Address() async throws {
        #expect(try SocketAddress(ipAddress: "::ffff:10.1.2.3", port: 1).clientIP == "10.1.2.3")
        #expect(try SocketAddress(ipAddress: "10.1.2.3", port: 1).clientIP == "10.1.2.3")
        #expect(try SocketAddress(ipAddress: "::1", port: 1).clientIP == "::1")
        #expect(try SocketAddress(ipAddress: "2001:db8::ffff:a01:203", port: 1).clientIP == "2001:db8::ffff:a01:203")
        #expect(try SocketAddress(ipAddress: "::ffff:0:10.1.2.3", port: 1).clientIP != "10.1.2.3", "IPv4-translated, not mapped")
        try await run(adjust: { $0.listen = SocketEndpoint(host: "::", port: 0) }) { upstream, gateway in
            let port = try #require(gateway.address.port)
            let outcome = try await RawClient.exchange(
                "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: try SocketAddress(ipAddress: "127.0.0.1", port: port),
                group: group)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(upstream.raw.lowercased().contains("x-forwarded-for: 127.0.0.1\r\n"), "\(upstream.raw)")
            #expect(!upstream.raw.contains("::ffff:"))
        }
    }

    @Test func underscoresPassWhenAllowedAndTrustedProxiesKeepTheChain() async throws {
        try await run(adjust: {
            $0.limits.underscoresInHeaders = true
            $0.trustedProxies = [AddressRange.parse("127.0.0.0/8")!]
        }) { upstream, gateway in
            let outcome = try await exchange(
                "GET /x HTTP/1.1\r\nHost: h\r\nX_Custom: 1\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n", gateway)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(upstream.raw.contains("X_Custom: 1"))
            #expect(upstream.raw.lowercased().contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\r\n"))
        }
    }

    /// The other fields a client can claim its origin with — `Forwarded`, `X-Real-IP`,
    /// `True-Client-IP`, `X-Forwarded-Port`, `-Ssl`, `-Prefix` — are dropped from a peer
    /// not in `trusted_proxies`, as its `X-Forwarded-For` is replaced (applications read
    /// them before `X-Forwarded-For`); a trusted proxy's go on. Until 2026-12-05 they
    /// went on from anyone.
    @Test(arguments: [false, true])
    func forwardingClaimsAreKeptFromTrustedProxiesOnly(trusted: Bool) async throws {
        let claims = "Forwarded: for=6.6.6.6;proto=https;host=evil\r\nX-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\n"
            + "X-Forwarded-Port: 443\r\nx-forwarded-ssl: on\r\nX-FORWARDED-PREFIX: /evil\r\nX-Forwarded: kept\r\n"
        try await run(adjust: { if trusted { $0.trustedProxies = [AddressRange.parse("127.0.0.0/8")!] } }) { upstream, gateway in
            let outcome = try await exchange("GET /x HTTP/1.1\r\nHost: h\r\n\(claims)Connection: close\r\n\r\n", gateway)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            let raw = upstream.raw
            #expect(raw.contains("X-Forwarded: kept\r\n"), "not one of the family")
            for line in ["Forwarded: for=6.6.6.6;proto=https;host=evil", "X-Real-IP: 6.6.6.6", "True-Client-IP: 6.6.6.6",
                         "X-Forwarded-Port: 443", "x-forwarded-ssl: on", "X-FORWARDED-PREFIX: /evil"] {
                #expect(raw.contains(line + "\r\n") == trusted, "\(line), trusted: \(trusted)")
            }
            #expect(raw.lowercased().contains("x-forwarded-proto: http\r\n"))
        }
    }

    @Test func trailersCannotCarryRoutingOrForwardingFields() async throws {
        try await run { upstream, gateway in
            let outcome = try await exchange(
                "POST /hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    + "3\r\nabc\r\n0\r\nHost: evil\r\nX-Forwarded-For: 6.6.6.6\r\nX_Trick: 1\r\nX-Checksum: 42\r\n\r\n", gateway)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(!upstream.raw.contains("evil"))
            #expect(!upstream.raw.contains("6.6.6.6"))
            #expect(!upstream.raw.contains("X_Trick"))
            #expect(upstream.raw.contains("X-Checksum: 42"))
        }
    }

    // MARK: Bounds

    @Test func connectionsPerClientAreCappedAndFreedOnClose() async throws {
        try await run(adjust: { $0.limits.maxConnectionsPerClient = 2 }) { _, gateway in
            let first = try await TestClient.connect(to: gateway.address, group: group)
            let second = try await TestClient.connect(to: gateway.address, group: group)
            #expect(try await first.get("/x").status == 200)
            #expect(try await second.get("/x").status == 200)
            let third = try await exchange("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", gateway)
            #expect(third.text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
            #expect(third.text.contains("too_many_connections"))
            // The open ones are unharmed.
            #expect(try await first.get("/x").status == 200)
            try await first.close()
            try await eventually("the closed connection is no longer counted") { gateway.gateway.openClientConnections == 1 }
            let fourth = try await exchange("GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", gateway)
            #expect(fourth.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            try await second.close()
            let stats = await traffic(gateway)
            #expect(stats.connectionsRefused == [0, 1])
        }
    }

    /// A refused connection whose client is still sending (a body after the head) gets
    /// its 503 and then the end of the stream, not a reset: the refusal's close lingers.
    /// Before 2026-12-04 the close reset such connections — k6's refused `POST`s saw
    /// "broken pipe", often before they read the answer.
    @Test func aRefusalAtTheCapIsNotLostToAReset() async throws {
        try await run(adjust: Self.capOfOne) { _, gateway in
            let first = try await TestClient.connect(to: gateway.address, group: group)
            #expect(try await first.get("/x").status == 200)
            let body = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)
            for _ in 0..<3 {
                let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
                // (The 503 waits for the request's first bytes: HandlerTests.aRefusalAtTheCapWaitsForTheRequest.)
                try? await channel.writeAndFlush(ByteBuffer(string: "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: \(4 * body.readableBytes)\r\n\r\n"))
                try await sink.waitFor("too_many_connections", on: channel.eventLoop)
                // The client goes on sending its body, as a client that does not read
                // while it writes does.
                var writeError: (any Error)?
                for _ in 0..<4 {
                    do { try await channel.writeAndFlush(body) } catch { writeError = error }
                }
                try await channel.closeFuture.get()
                // (Once the 503's end arrived the client closes its side itself; later
                // writes then fail on its own closed channel, which is no reset.)
                #expect(!(writeError is IOError), "the body was cut off: \(writeError.map { "\($0)" } ?? "")")
                #expect(sink.outcome.error == nil, "the refusal ended in \(sink.outcome.error ?? "")")
                #expect(sink.outcome.text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n") && sink.outcome.text.hasSuffix("}"))
            }
            try await first.close()
            try await eventually("no refusal lingers") { gateway.gateway.lingeringRefusals.load(ordering: .relaxed) == 0 }
        }
    }

    @Test func totalConnectionsAreCapped() async throws {
        try await run(adjust: Self.capOfOne) { _, gateway in
            let first = try await TestClient.connect(to: gateway.address, group: group)
            #expect(try await first.get("/x").status == 200)
            let second = try await exchange("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", gateway)
            #expect(second.text.contains("too_many_connections"))
            try await first.close()
        }
    }
}

/// A raw upstream for upgrades: answers a head that asks for any `Upgrade` with 101
/// (granting the protocol asked for) and `welcome`, then echoes every byte
/// upper-cased; any other head gets a 200 and a close.
final class UpgradeEchoServer: Sendable {
    let channel: any Channel
    private let heads = NIOLockedValueBox("")
    var port: Int { channel.localAddress!.port! }
    /// Every request head received, concatenated.
    var head: String { heads.withLockedValue { $0 } }

    private init(channel: any Channel) { self.channel = channel }

    static func start(group: any EventLoopGroup) async throws -> UpgradeEchoServer {
        let box = NIOLockedValueBox<UpgradeEchoServer?>(nil)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(server: { box.withLockedValue { $0! } }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = UpgradeEchoServer(channel: channel)
        box.withLockedValue { $0 = server }
        return server
    }

    func stop() async throws { try await channel.close() }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let server: () -> UpgradeEchoServer
        var pending = ""
        var switched = false
        init(server: @escaping () -> UpgradeEchoServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            if switched {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text.uppercased())), promise: nil)
                return
            }
            pending += text
            guard let end = pending.range(of: "\r\n\r\n") else { return }
            let head = String(pending[..<end.upperBound])
            server().heads.withLockedValue { $0 += head }
            // Any protocol asked for is granted, as an h2c-capable server grants `h2c`.
            if let line = head.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("upgrade:") }) {
                switched = true
                let protocolName = line.dropFirst("upgrade:".count).trimmingCharacters(in: .whitespaces)
                context.writeAndFlush(
                    wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: \(protocolName)\r\nConnection: Upgrade\r\n\r\nwelcome")),
                    promise: nil)
            } else {
                context.writeAndFlush(
                    wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")),
                    promise: nil)
            }
        }
    }
}

/// The same exchanges through both request parsers (`parser: fluxgate`, the default,
/// and `parser: llhttp`, the fallback): the answers and what the upstream receives
/// must not depend on the choice.
@Suite(.timeLimit(.minutes(2)))
struct ParserChoiceTests {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let gatewayGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    @Test(arguments: RequestParserChoice.allCases)
    func bothParsersServeTheSameBattery(_ parser: RequestParserChoice) async throws {
        let upstream = try await TestUpstream.start(name: "a", group: group)
        let config = try makeConfig(upstreams: [upstream.url]) {
            $0.parser = parser
            $0.limits.maxHeaderBytes = 2048
        }
        try await withGateway(config, group: gatewayGroup) { gateway in
            func exchange(_ request: String) async throws -> String {
                try await RawClient.exchange(request, with: gateway.address, group: group).text
            }
            // Pipelined: a GET, a chunked upload with an ordinary and a forbidden trailer, a HEAD.
            let pipelined = try await exchange(
                "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
                    + "POST /hash HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\nHost: evil\r\n\r\n"
                    + "HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            #expect(pipelined.components(separatedBy: "HTTP/1.1 200 OK").count == 4, "\(pipelined)")
            // Chunk boundaries are not kept (a transfer coding is per hop): the two chunks
            // read at once go on as one.
            #expect(upstream.raw.contains("\r\n5\r\nabcde\r\n0\r\nX-Sum: 5\r\n\r\n"), "\(upstream.raw)")
            #expect(!upstream.raw.contains("evil"))
            // Malformed and oversized input: 400 and 431, with a close.
            let bad = try await exchange("GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n")
            #expect(bad.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
            let big = try await exchange("GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(String(repeating: "b", count: 4000))\r\n\r\n")
            #expect(big.hasPrefix("HTTP/1.1 431 "))
            // A Content-Length body, HTTP/1.0 without Host (the upstream's authority stands in).
            let post = try await exchange("POST /hash HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            #expect(post.hasPrefix("HTTP/1.1 200 OK\r\n"))
            let old = try await exchange("GET /x HTTP/1.0\r\n\r\n")
            #expect(old.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(upstream.raw.lowercased().contains("get /x http/1.1\r\nhost: \(upstream.url.dropFirst("http://".count))\r\n"))
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }
}
