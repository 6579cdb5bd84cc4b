import FluxgateCore
import FluxgateTestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@testable import FluxgateNIO

/// Admission control on real sockets: the slot limit holds across event loops, and
/// every shed is an answer with the right status and headers on a kept connection.
@Suite(.timeLimit(.minutes(1)))
struct AdmissionEndToEndTests {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let gatewayGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    /// A gateway with rate limits off in front of test upstreams named `names`.
    func run(
        upstreams names: [String], _ adjust: (inout GatewayConfig) -> Void,
        _ body: ([TestUpstream], GatewayHarness) async throws -> Void
    ) async throws {
        var upstreams: [TestUpstream] = []
        for name in names { upstreams.append(try await TestUpstream.start(name: name, group: group)) }
        let config = try makeConfig(upstreams: upstreams.map(\.url)) { config in
            config.rateLimit.perClient.enabled = false
            config.rateLimit.global.enabled = false
            adjust(&config)
        }
        try await withGateway(config, group: gatewayGroup) { harness in try await body(upstreams, harness) }
        for upstream in upstreams { try await upstream.stop() }
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    func run(_ adjust: (inout GatewayConfig) -> Void, _ body: (TestUpstream, GatewayHarness) async throws -> Void) async throws {
        try await run(upstreams: ["a"], adjust) { upstreams, harness in try await body(upstreams[0], harness) }
    }

    func expectShed(_ response: TestResponse, status: Int, reason: String) {
        #expect(response.status == status)
        #expect(response.header("x-fluxgate-shed") == reason)
        let retryAfter = Int(response.header("retry-after") ?? "") ?? 0
        #expect(retryAfter >= 1)
        #expect(response.bodyString.hasPrefix(#"{"error":"\#(reason)","message":""#))
        #expect(response.bodyString.hasSuffix(#","retry_after_s":\#(retryAfter)}"#))
        #expect(response.header("content-type") == "application/json")
        #expect(response.header("x-request-id") != nil)
    }

    /// 40 clients at once against S = 5 (C = 10, u = 0.5): the upstream never holds
    /// more than 5, the queue takes 5 more, the rest are shed `overloaded`. The upstream
    /// holds what it gets until every shed is answered, so "5 at the upstream" is read
    /// while nothing can leave (it read a timed `/slow` before, and under load saw 4).
    @Test func inFlightNeverExceedsTheSlots() async throws {
        try await run({ config in
            config.upstreams[0].maxConcurrency = 10
            config.admission.targetUtilization = 0.5
            config.admission.queueTimeout = .seconds(10)
        }) { upstream, gateway in
            var clients: [TestClient] = []
            for _ in 0..<40 { clients.append(try await TestClient.connect(to: gateway.address, group: group)) }
            let answered = Counter()
            let futures = clients.map {
                let future = $0.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/gate-on/a", headers: ["host": "h"]))
                future.whenComplete { _ in answered.increment() }
                return future
            }
            // Admitted 5 and queued 5 wait behind the gate; the other 30 are answered.
            try await eventually("30 answered") { answered.value == 30 }
            try await eventually("the admitted at the upstream") { upstream.count("/gate-on/a") == 5 }
            #expect(gateway.gateway.runtime.gate.snapshot.inFlight == 5)
            #expect(upstream.count("/gate-on/a") == 5)
            upstream.openGate()
            var statuses: [Int: Int] = [:]
            for future in futures {
                let response = try await future.get()
                statuses[response.status, default: 0] += 1
                if response.status == 503 { expectShed(response, status: 503, reason: "overloaded") }
            }
            #expect(statuses[200, default: 0] >= 10)
            #expect(statuses[200, default: 0] + statuses[503, default: 0] == 40)
            // Shed connections stay open and usable.
            for client in clients { #expect(try await client.get("/").status == 200) }
            for client in clients { try await client.close() }
            let snapshot = gateway.gateway.runtime.gate.snapshot
            #expect(snapshot.inFlight == 0 && snapshot.queued == 0)
            let traffic = await gateway.gateway.observability.read().traffic
            #expect(traffic.shedCount(.overloaded) == statuses[503, default: 0])
        }
    }

    @Test func perClientBucketAnswers429WithRateLimitHeaders() async throws {
        try await run({ config in
            config.rateLimit.perClient.enabled = true
            // One token every 20 s: a machine that stalls between the requests does not
            // refill the bucket (at 1/s a one-second stall did).
            config.rateLimit.perClient.rate = 0.05
            config.rateLimit.perClient.burst = 2
        }) { _, gateway in
            let client = try await TestClient.connect(to: gateway.address, group: group)
            #expect(try await client.get("/").status == 200)
            #expect(try await client.get("/").status == 200)
            let limited = try await client.get("/")
            expectShed(limited, status: 429, reason: "client_rate_limited")
            #expect(limited.header("retry-after") == "20")
            #expect(limited.header("ratelimit-policy") == #""per-client";q=2;w=40"#)
            #expect(limited.header("ratelimit") == #""per-client";r=0;t=20"#)
            #expect(try await client.get("/").status == 429)  // same connection, still answering
            try await client.close()
        }
    }

    @Test func clientsKeyedByHeaderHaveTheirOwnBuckets() async throws {
        try await run({ config in
            config.rateLimit.perClient.enabled = true
            config.rateLimit.perClient.rate = 1
            config.rateLimit.perClient.burst = 1
            config.rateLimit.perClient.key = "header:X-API-Key"
        }) { _, gateway in
            let client = try await TestClient.connect(to: gateway.address, group: group)
            #expect(try await client.get("/", headers: [("x-api-key", "k1")]).status == 200)
            #expect(try await client.get("/", headers: [("x-api-key", "k1")]).status == 429)
            #expect(try await client.get("/", headers: [("x-api-key", "k2")]).status == 200)
            try await client.close()
        }
    }

    @Test func globalBucketAnswers503RateLimited() async throws {
        try await run({ config in
            config.rateLimit.global.enabled = true
            config.rateLimit.global.rate = 1
            config.rateLimit.global.burst = 1
        }) { _, gateway in
            let client = try await TestClient.connect(to: gateway.address, group: group)
            #expect(try await client.get("/").status == 200)
            let limited = try await client.get("/")
            expectShed(limited, status: 503, reason: "rate_limited")
            #expect(limited.header("ratelimit-policy") == nil)
            try await client.close()
        }
    }

    @Test func waitingTooLongIsQueueTimeout() async throws {
        try await run({ config in
            config.upstreams[0].maxConcurrency = 2  // S = 1, queue 1
            config.admission.targetUtilization = 0.5
            config.admission.queueTimeout = .milliseconds(100)
        }) { upstream, gateway in
            // Held until the gate opens, not for a time: however slow the machine, the
            // slot is still taken when the waiter's queue timeout ends.
            let holder = try await TestClient.connect(to: gateway.address, group: group)
            let held = holder.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/gate-on/\(upstream.name)", headers: ["host": "h"]))
            try await upstream.waitForRequestHeads(1)
            let waiter = try await TestClient.connect(to: gateway.address, group: group)
            let timedOut = try await waiter.get("/")
            expectShed(timedOut, status: 503, reason: "queue_timeout")
            #expect(upstream.received.count == 1)  // only the held one reached the upstream
            upstream.openGate()
            #expect(try await held.get().status == 200)
            // The slot came back: the next request is admitted at once.
            #expect(try await waiter.get("/").status == 200)
            try await holder.close()
            try await waiter.close()
        }
    }

    @Test func dryRunCountsButShedsNothing() async throws {
        try await run({ config in
            config.rateLimit.perClient.enabled = true
            config.rateLimit.perClient.rate = 1
            config.rateLimit.perClient.burst = 1
            config.rateLimit.perClient.dryRun = true
            config.upstreams[0].maxConcurrency = 2
            config.admission.targetUtilization = 0.5
            config.admission.dryRun = true
        }) { upstream, gateway in
            var clients: [TestClient] = []
            for _ in 0..<4 { clients.append(try await TestClient.connect(to: gateway.address, group: group)) }
            let futures = clients.map { $0.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/slow?ms=50", headers: ["host": "h"])) }
            for future in futures { #expect(try await future.get().status == 200) }
            let dryRun = gateway.gateway.runtime.gate.dryRun
            #expect(dryRun.count(of: .clientRateLimited) == 3)
            let traffic = await gateway.gateway.observability.read().traffic
            #expect(traffic.shedCount(.clientRateLimited) == 0)
            #expect(traffic.shedCount(.overloaded) == 0)
            #expect(upstream.maxConcurrency > 1)
            for client in clients { try await client.close() }
            #expect(gateway.gateway.runtime.gate.snapshot.inFlight == 0)
        }
    }

    /// docs/CONFIGURATION.md, "Admission control": when an upstream goes down, C shrinks at once and traffic goes to the
    /// ready ones only; with none ready every request is 503 `no_healthy_upstream`.
    @Test func capacityAndRotationFollowReadiness() async throws {
        try await run(upstreams: ["a", "b"], { config in
            config.upstreams[0].maxConcurrency = 30
            config.upstreams[1].maxConcurrency = 10
        }) { upstreams, gateway in
            let (first, second) = (upstreams[0], upstreams[1])
            let runtime = gateway.gateway.runtime
            let client = try await TestClient.connect(to: gateway.address, group: group)
            #expect(runtime.gate.snapshot.capacity == 40)
            runtime.setReady(1, false)
            #expect(runtime.gate.snapshot.capacity == 30)
            #expect(runtime.gate.snapshot.slots == 20)  // floor(30 × 0.67)
            for _ in 0..<4 { #expect(try await client.get("/").status == 200) }
            #expect(first.received.count == 4 && second.received.isEmpty)
            runtime.setReady(0, false)
            expectShed(try await client.get("/"), status: 503, reason: "no_healthy_upstream")
            runtime.setReady(0, true)
            runtime.setReady(1, true)
            #expect(runtime.gate.snapshot.capacity == 40)
            for _ in 0..<4 { #expect(try await client.get("/").status == 200) }
            #expect(first.received.count == 6 && second.received.count == 2)
            try await client.close()
        }
    }

    /// `abort_on_client_close` (default on): a client that sends its FIN before its answer
    /// started gives its place back at once — S = 1, the first client's request waits at
    /// the upstream (`/hold`), the second's in the queue; both half-close. The queued one
    /// leaves the queue, the held one's upstream connection is closed and its slot freed,
    /// so a third request is served; the log counts both as `client_gone`.
    @Test func clientsThatCloseBeforeTheirAnswerGiveBackTheirPlaces() async throws {
        try await run({ config in
            config.upstreams[0].maxConcurrency = 2
            config.admission.targetUtilization = 0.5  // S = 1, one queue place
            config.admission.queueTimeout = .seconds(3600)
            config.admission.queueDelayTarget = .zero
        }) { upstream, gateway in
            let gate = gateway.gateway.runtime.gate
            let (held, _) = try await RawClient.open(with: gateway.address, group: group)
            try await held.writeAndFlush(ByteBuffer(string: "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await upstream.waitForRequestHeads(1)
            let (queued, _) = try await RawClient.open(with: gateway.address, group: group)
            try await queued.writeAndFlush(ByteBuffer(string: "GET /queued HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the second request queued: \(gate.snapshot)") { gate.snapshot.queued == 1 }
            try await queued.close(mode: .output)
            try await eventually("the queued request left the queue: \(gate.snapshot)") { gate.snapshot.queued == 0 }
            #expect(gate.snapshot.inFlight == 1)
            try await held.close(mode: .output)
            try await upstream.waitForClosedConnections(1)
            try await eventually("the held slot was freed: \(gate.snapshot)") { gate.snapshot.inFlight == 0 }
            let next = try await RawClient.exchange("GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: gateway.address, group: group)
            #expect(next.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(upstream.received.map(\.head.uri) == ["/hold", "/next"])
            let traffic = await gateway.gateway.observability.read().traffic
            #expect(traffic.outcomes.clientGone == 2, "\(traffic.outcomes)")
            try? await held.close()
            try? await queued.close()
        }
    }
}
