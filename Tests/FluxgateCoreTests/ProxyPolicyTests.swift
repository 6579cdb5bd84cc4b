import Testing

@testable import FluxgateCore

struct ProxyPolicyTests {
    @Test func fixedHopByHopFields() {
        let policy = HopByHopPolicy()
        for name in ["Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer", "UPGRADE"] {
            #expect(policy.isHopByHop(name), "\(name)")
        }
        for name in ["Host", "Content-Length", "Transfer-Encoding", "X-Request-ID", "Tee", "Upgrades"] {
            #expect(!policy.isHopByHop(name), "\(name)")
        }
    }

    @Test func fieldsNamedInConnectionAreRemovedButNotFraming() {
        var policy = HopByHopPolicy()
        policy.noteConnectionHeader(" X-Private ,close,, content-length, Host, transfer-encoding")
        #expect(policy.isHopByHop("x-private"))
        #expect(policy.requestsClose)
        #expect(!policy.isHopByHop("Content-Length"))
        #expect(!policy.isHopByHop("Host"))
        #expect(!policy.isHopByHop("Transfer-Encoding"))
    }

    @Test func requestIDs() {
        var generator = RequestIDGenerator(seed: 42)
        let ids = (0..<1000).map { _ in generator.nextID().description }
        #expect(Set(ids).count == 1000)
        #expect(ids.allSatisfy { $0.utf8.count == 16 && $0.allSatisfy(\.isHexDigit) })
        var again = RequestIDGenerator(seed: 42)
        #expect(again.nextID().description == ids[0])
        #expect(RequestID.generated(0xAB).description == "00000000000000ab")
        #expect(RequestID.client("from-client").description == "from-client")
        #expect(RequestIDGenerator.isAcceptable("abc-123"))
        #expect(!RequestIDGenerator.isAcceptable(""))
        #expect(!RequestIDGenerator.isAcceptable("a b"))
        #expect(!RequestIDGenerator.isAcceptable(String(repeating: "a", count: 201)))
    }

    @Test func headerNameComparison() {
        #expect(HeaderName.equals("Content-Length", lowercase: "content-length"))
        #expect(!HeaderName.equals("Content-Lengt", lowercase: "content-length"))
        #expect(!HeaderName.equals("content_length", lowercase: "content-length"))
        #expect(HeaderName.isToken("X-API-Key"))
        #expect(!HeaderName.isToken("X API"))
    }

    @Test func keepAliveFollowsVersionAndConnectionTokens() {
        var none = HopByHopPolicy()
        #expect(none.keepsAlive(http10: false))
        #expect(!none.keepsAlive(http10: true))
        none.noteConnectionHeader("Keep-Alive")
        #expect(none.keepsAlive(http10: true))
        var close = HopByHopPolicy()
        close.noteConnectionHeader("keep-alive, close")
        #expect(!close.keepsAlive(http10: false))
        #expect(!close.keepsAlive(http10: true))
    }

    @Test func classifierCoversBothSides() {
        #expect(HeaderName.classify("X-Forwarded-For") == .forwardedFor)
        #expect(HeaderName.classify("HOST") == .host)
        #expect(HeaderName.classify("X-Forwardex-For") == .other)
        // Any other X-Forwarded-* is a forwarding claim (since 2026-12-05).
        #expect(HeaderName.classify("X-Forwarded-Fox") == .forwardedClaim)
        #expect(HeaderName.Kind.upgrade.isAlwaysHopByHop && !HeaderName.Kind.transferEncoding.isAlwaysHopByHop)
        #expect(HeaderName.Kind.host.isProtected && !HeaderName.Kind.forwardedFor.isProtected)
    }

    /// Where a body waits before admission: memory up to `request_buffer_bytes`, a spool
    /// file beyond (its length reserved), chunked bodies in memory until they outgrow
    /// it; nothing waits with buffering off, and past memory nothing with spooling off.
    @Test func requestBodyPlans() {
        func plan(_ length: Int?, chunked: Bool = false, memory: Int = 65_536, spool: Int = 1 << 30) -> RequestBodyPlan {
            RequestBodyPlan.atHead(contentLength: length, chunked: chunked, memoryBytes: memory, spoolBytes: spool)
        }
        #expect(plan(nil) == .admitNow)
        #expect(plan(0) == .admitNow)
        #expect(plan(1) == .memory)
        #expect(plan(65_536) == .memory)
        #expect(plan(65_537) == .spool(reserve: 65_537))
        #expect(plan(nil, chunked: true) == .memory)
        #expect(plan(65_537, spool: 0) == .admitNow)
        #expect(plan(10, memory: 0) == .admitNow)
        #expect(plan(nil, chunked: true, memory: 0) == .admitNow)
        let streamed = RequestBodyPlan.atHead(contentLength: 10_000_000, chunked: false, memoryBytes: 65_536, spoolBytes: 1 << 30, streamed: true)
        #expect(streamed == .admitNow, "stream_body_prefixes")
        #expect(RequestTarget.matchesAny(["/ingest"], target: "/ingest/logs?x=1"))
        #expect(RequestTarget.matchesAny(["/ingest"], target: "/a/../ingest"))
        #expect(!RequestTarget.matchesAny(["/ingest"], target: "/ingestion"))
        #expect(!RequestTarget.matchesAny([], target: "/ingest"))
        #expect(RequestBodyPlan.chunkedOverflow(maxBodyBytes: 10_485_760, spoolBytes: 1 << 30) == .spool(reserve: 10_485_760))
        #expect(RequestBodyPlan.chunkedOverflow(maxBodyBytes: 10_485_760, spoolBytes: 0) == .admitNow)
    }

    /// The spool budget never lends more than it has; what is given back is free again,
    /// and a reload that lowers it below what is held lets no new body in until enough ends.
    @Test func spoolBudgetReservations() {
        var budget = SpoolBudget(limit: 100)
        func take(_ bytes: Int) -> Bool { budget.reserve(bytes) }
        #expect(take(60))
        #expect(!take(41))
        #expect(take(40))
        #expect(budget.reserved == 100)
        #expect(!take(1))
        budget.release(30)
        #expect(take(30))
        budget.limit = 50
        #expect(!take(1), "held beyond the lowered limit: nothing new fits")
        budget.release(70)
        #expect(budget.reserved == 30)
        #expect(take(20))
        #expect(!take(1))
        budget.release(1_000)
        #expect(budget.reserved == 0)
        #expect(!take(-1))
    }
}

/// `limits.max_requests_per_connection` and `timeouts.max_connection_age`
/// (``ConnectionReuse``), on a manual clock.
struct ConnectionReuseTests {
    let opened = MonotonicTime(nanoseconds: 1_000_000_000)

    @Test func theRequestThatReachesTheCountIsTheLast() {
        var reuse = ConnectionReuse(openedAt: opened)
        let limits = ConnectionReuse.Limits(maxRequests: 3, maxAge: .zero)
        #expect(reuse.requestStarted(now: opened, limits: limits) == nil)
        #expect(reuse.requestStarted(now: opened, limits: limits) == nil)
        #expect(reuse.requestStarted(now: opened, limits: limits) == .maxRequests)
        #expect(reuse.requests == 3)
        // One request per connection: the first is already the last.
        var single = ConnectionReuse(openedAt: opened)
        #expect(single.requestStarted(now: opened, limits: .init(maxRequests: 1, maxAge: .zero)) == .maxRequests)
    }

    @Test func aRequestStartedAtTheAgeIsTheLast() {
        var reuse = ConnectionReuse(openedAt: opened)
        let limits = ConnectionReuse.Limits(maxRequests: 0, maxAge: .seconds(60))
        #expect(reuse.requestStarted(now: opened + .seconds(59), limits: limits) == nil)
        #expect(reuse.requestStarted(now: opened + .milliseconds(59_999), limits: limits) == nil)
        #expect(reuse.requestStarted(now: opened + .seconds(60), limits: limits) == .maxAge)
        // Both reached: the count is named (checked first).
        var both = ConnectionReuse(openedAt: opened)
        #expect(both.requestStarted(now: opened + .seconds(61), limits: .init(maxRequests: 1, maxAge: .seconds(60))) == .maxRequests)
    }

    @Test func unboundedNeverEndsAConnection() {
        var reuse = ConnectionReuse(openedAt: opened)
        for hour in 0..<10_000 {
            #expect(reuse.requestStarted(now: opened + .seconds(hour * 3600), limits: .unbounded) == nil)
        }
        #expect(reuse.requests == 10_000)
        // A reload that lowers the bound applies to the requests after it.
        #expect(reuse.requestStarted(now: opened, limits: .init(maxRequests: 5_000, maxAge: .zero)) == .maxRequests)
        // Small enough to ride in a parked connection's entry beside its descriptor.
        #expect(MemoryLayout<ConnectionReuse>.size == 12)
    }
}
