import Testing

@testable import FluxgateCore

/// The pure rules behind edge hardening (docs/SECURITY.md), with a manual clock.
struct HardeningCoreTests {
    let t0 = MonotonicTime(nanoseconds: 1_000_000_000)
    func at(_ milliseconds: Int) -> MonotonicTime { t0 + .milliseconds(milliseconds) }

    // MARK: ExchangeDeadlines

    func deadlines(request: Duration = .zero) -> ExchangeDeadlines {
        ExchangeDeadlines(
            limits: .init(
                clientBody: .milliseconds(100), clientSend: .milliseconds(200), upstreamHeader: .milliseconds(300),
                upstreamRead: .milliseconds(400), upstreamSend: .milliseconds(500), request: request),
            now: t0)
    }

    /// Which `Upgrade` values may become tunnels: every listed protocol must be
    /// allowed (versions and case ignored); a value naming none is not an upgrade.
    @Test func onlyListedUpgradeProtocolsMayTunnel() {
        let websocket = UpgradeProtocols.websocketOnly
        for value in ["websocket", "WebSocket", "websocket/13", " websocket ", "websocket,", ",websocket"] {
            #expect(websocket.allow(value), "\(value)")
        }
        for value in ["h2c", "websocket, h2c", "h2c, websocket", "", " , ", "/13", "websockets", "HTTP/2.0"] {
            #expect(!websocket.allow(value), "\(value)")
        }
        let both = UpgradeProtocols(["websocket", "h2c"])
        #expect(both.allow("h2c") && both.allow("H2C, websocket"))
        #expect(!UpgradeProtocols([]).allow("websocket"))
        #expect(UpgradeProtocols.isValidName("websocket") && UpgradeProtocols.isValidName("h2c") && UpgradeProtocols.isValidName("TLS"))
        for name in ["", "h2c/1", "web socket", "a,b"] { #expect(!UpgradeProtocols.isValidName(name), "\(name)") }
    }

    /// What a client could claim its origin with besides `X-Forwarded-For`: one kind,
    /// dropped from untrusted peers (the `X-Forwarded-*` family by its prefix).
    @Test func forwardingClaimsAreClassifiedAsOneKind() {
        for name in ["Forwarded", "x-real-ip", "True-Client-IP", "X-Forwarded-Port", "x-forwarded-ssl", "X-Forwarded-Scheme",
                     "X-Forwarded-Prefix", "X-FORWARDED-TLS-CLIENT-CERT", "x-forwarded-server", "X-Forwarded-Uri"] {
            #expect(HeaderName.classify(name) == .forwardedClaim, "\(name)")
        }
        #expect(HeaderName.classify("X-Forwarded-For") == .forwardedFor)
        #expect(HeaderName.classify("X-Forwarded-Host") == .forwardedHost)
        #expect(HeaderName.classify("X-Forwarded-Proto") == .forwardedProto)
        for name in ["X-Forwarded", "x-forwarded-", "Forwarded-X", "x-real-ipv6", "accept-encoding", "x-forwardedport"] {
            #expect(HeaderName.classify(name) == .other, "\(name)")
        }
    }

    @Test func aBodyThatStopsArrivingExpiresBetweenReads() {
        var d = deadlines()
        #expect(d.nextDeadline == nil, "nothing runs before anything is awaited")
        d.clientBodyProgress(now: at(0))
        #expect(d.nextDeadline == at(100))
        d.clientBodyProgress(now: at(90))
        #expect(d.expired(now: at(150)) == nil, "measured between reads, not from the head")
        #expect(d.expired(now: at(190)) == .clientBody)
        d.clientBodyNotWanted()
        #expect(d.expired(now: at(10_000)) == nil)
    }

    @Test func theUpstreamHoldingTheBodyBackIsBlamedNotTheClient() {
        var d = deadlines()
        d.clientBodyProgress(now: at(0))
        d.upstreamWritable(false, now: at(50))
        #expect(d.expired(now: at(400)) == nil, "client_body does not run while the gateway paused reads")
        #expect(d.expired(now: at(550)) == .upstreamSend)
        d.upstreamWritable(true, now: at(520))
        #expect(d.expired(now: at(560)) == .clientBody, "reads resumed: the client's clock runs again")
    }

    @Test func headThenBodyThenCompletion() {
        var d = deadlines()
        d.requestSent(now: at(0))
        #expect(d.nextDeadline == at(300))
        #expect(d.expired(now: at(300)) == .upstreamHeader)
        d.responseHeadReceived(now: at(100))
        #expect(d.nextDeadline == at(500))
        d.upstreamProgress(now: at(450))
        #expect(d.expired(now: at(800)) == nil)
        #expect(d.expired(now: at(850)) == .upstreamRead)
        d.responseComplete()
        #expect(d.nextDeadline == nil)
    }

    @Test func aClientThatStopsReadingIsBlamedNotTheUpstream() {
        var d = deadlines()
        d.requestSent(now: at(0))
        d.responseHeadReceived(now: at(10))
        d.clientWritable(false, now: at(20))
        #expect(d.nextDeadline == at(220), "upstream reads are paused for the client: only client_send runs")
        #expect(d.expired(now: at(219)) == nil)
        #expect(d.expired(now: at(220)) == .clientSend)
        d.clientWritable(true, now: at(210))
        #expect(d.nextDeadline == at(610), "the upstream's clock restarts when its reads resume")
    }

    @Test func theTotalCapAndRetries() {
        var d = deadlines(request: .milliseconds(1000))
        #expect(d.nextDeadline == at(1000))
        d.requestSent(now: at(0))
        d.attemptRestarted()
        #expect(d.nextDeadline == at(1000), "a new attempt drops the old upstream's deadlines")
        d.requestSent(now: at(800))
        #expect(d.expired(now: at(1000)) == .request)
    }

    @Test func longTimeoutsKeepTheirExactLength() {
        // The limits are kept in nanoseconds; from 9.2 s up a Duration's conversion takes
        // its 128-bit path, so the defaults (30 s) and an hour are checked to the nanosecond.
        var limits = ExchangeDeadlines.Limits()
        #expect(limits.upstreamHeader == .seconds(30))
        limits.upstreamRead = .seconds(3600) + .nanoseconds(7)
        #expect(limits.upstreamRead == .seconds(3600) + .nanoseconds(7))
        var d = ExchangeDeadlines(limits: limits, now: t0)
        d.requestSent(now: t0)
        #expect(d.nextDeadline == t0 + .seconds(30))
        d.responseHeadReceived(now: t0)
        #expect(d.nextDeadline == MonotonicTime(nanoseconds: t0.nanoseconds + 3_600_000_000_007))
        #expect(d.expired(now: MonotonicTime(nanoseconds: t0.nanoseconds + 3_600_000_000_006)) == nil)
        #expect(d.expired(now: MonotonicTime(nanoseconds: t0.nanoseconds + 3_600_000_000_007)) == .upstreamRead)
    }

    // MARK: Targets and routes

    @Test func pathsAreNormalisedBeforeRoutesMatch() {
        #expect(RequestTarget.normalizedPath("/api/x?q=1") == "/api/x")
        #expect(RequestTarget.normalizedPath("/%61pi/x") == "/api/x")
        #expect(RequestTarget.normalizedPath("/api//auth/../x") == "/api/x")
        #expect(RequestTarget.normalizedPath("/api/./x/") == "/api/x/")
        #expect(RequestTarget.normalizedPath("/a%2Fb") == "/a%2Fb", "an encoded slash is data, not a separator")
        #expect(RequestTarget.normalizedPath("http://h:1/api/x") == "/api/x")
        #expect(RequestTarget.normalizedPath("http://h") == "/")
        #expect(RequestTarget.normalizedPath("/../x") == nil)
        #expect(RequestTarget.normalizedPath("/%2e%2e/x") == nil)
        #expect(RequestTarget.normalizedPath("/.well-known/x") == "/.well-known/x")
        // Found by the fuzzer: decoding must not assemble a new escape a second decoder would read.
        #expect(RequestTarget.normalizedPath("/a%%32e2e/..q=1") == "/a%252e2e/..q=1")
        #expect(RequestTarget.normalizedPath("/a%%32e2e/..q=1").flatMap(RequestTarget.normalizedPath) == "/a%252e2e/..q=1")
        // Bytes, not Characters: a combining mark after `/` does not hide the separator.
        #expect(RequestTarget.normalizedPath("/\u{64F}//x/..") == "/\u{64F}/")
        #expect(RequestTarget.matches(prefix: "/api", path: "/api/\u{301}x"))
        #expect(!RequestTarget.matches(prefix: "/api", path: "/api\u{301}"))

        var admission = AdmissionConfig()
        admission.routes = [RoutePriority(prefix: "/api", priority: .low), RoutePriority(prefix: "/api/auth", priority: .critical)]
        #expect(admission.priority(forTarget: "/api") == .low)
        #expect(admission.priority(forTarget: "/api/x") == .low)
        #expect(admission.priority(forTarget: "/apix") == .normal, "segment boundary")
        #expect(admission.priority(forTarget: "/%61pi/auth/login") == .critical)
        #expect(admission.priority(forTarget: "/api/auth/../x") == .low, "where the upstream will see it")
        #expect(admission.priority(forTarget: "/api/auth//login") == .critical)
    }

    @Test func theByteLevelClimbCheckAgreesWithTheGeneralRule() {
        let targets = [
            "/", "/health", "/a/b?x=/../..", "/a#/../..", "/../x", "/a/..", "/a/../..", "/a/./../..", "/%2e%2e/x",
            "//..", "/.well-known/x", "/a/.", "*", "http://h/../x", "http://h/a", "a/../..", "/\u{64F}/..", "/x/..?",
        ]
        for target in targets {
            let general = RequestTarget.climbsAboveRoot(target)
            let bytes = Array(target.utf8).withUnsafeBytes { RequestTarget.climbsAboveRoot(bytes: $0) }
            #expect(bytes == general, "\(target)")
        }
        #expect(Array("/../x".utf8).withUnsafeBytes { RequestTarget.climbsAboveRoot(bytes: $0) })
        #expect(!Array("/a/b?x=/../..".utf8).withUnsafeBytes { RequestTarget.climbsAboveRoot(bytes: $0) })
        // Random targets over the bytes that matter.
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("/.%2eE?#a".utf8)
        for _ in 0..<2000 {
            let length = Int.random(in: 1...10, using: &generator)
            let bytes = [UInt8(ascii: "/")] + (1..<length).map { _ in alphabet.randomElement(using: &generator)! }
            let target = String(decoding: bytes, as: UTF8.self)
            #expect(bytes.withUnsafeBytes { RequestTarget.climbsAboveRoot(bytes: $0) } == RequestTarget.climbsAboveRoot(target), "\(target)")
        }
    }

    @Test func absoluteFormAuthority() {
        #expect(RequestTarget.absoluteAuthority("http://Example.com:80/x") == "Example.com:80")
        #expect(RequestTarget.absoluteAuthority("HTTPS://h?q") == "h")
        #expect(RequestTarget.absoluteAuthority("/x") == nil)
        #expect(RequestTarget.absoluteAuthority("/redirect?to=http://x") == nil)
    }

    @Test(arguments: [
        ("/a?b", nil), ("*", nil), ("/redirect?to=http://x", nil),
        ("http://h:8080/a?b", 13), ("http://h?b", 8), ("https://h", 9), ("HTTP://H/", 8),
    ] as [(String, Int?)])
    func anAbsoluteFormTargetGoesUpstreamFromItsPath(_ target: String, _ start: Int?) {
        let found = Array(target.utf8).withUnsafeBytes { RequestTarget.originFormStart($0) }
        #expect(found == start, "\(target)")
    }

    @Test func routesSeeTheOriginFormTheUpstreamGets() {
        // A query straight after the authority holds no path: the path is `/`, as the
        // upstream gets it (`/?x/api`), whatever the query spells.
        #expect(RequestTarget.routingPath("http://h?x/api/admin") == "/")
        #expect(!RequestTarget.matchesAny(["/api"], target: "http://h?x/api/admin"))
        #expect(!RequestTarget.climbsAboveRoot("http://h?/../.."))
        #expect(RequestTarget.normalizedPath("HTTPS://h") == "/")
        #expect(RequestTarget.routingPath("http://h:80/api/x?y=/z") == "/api/x")
        #expect(RequestTarget.climbsAboveRoot("http://h/a/../../b"))
        #expect(RequestTarget.routingPath("/a?b") == "/a")
    }

    @Test func anAbsoluteFormAuthorityAndHostAgreeUpToCaseAndTheDefaultPort() {
        for (target, host) in [
            ("http://h/x", "h"), ("http://H/x", "h"), ("http://h:80/x", "h"), ("http://h/x", "h:80"), ("http://h:/x", "h"),
            ("https://h/x", "h:443"), ("HTTPS://h:443/x", "H"), ("http://[::1]:80/x", "[::1]"), ("/x", "anything"),
            ("http://h:8080/x", " h:8080 "),
        ] {
            #expect(!RequestTarget.hostDisagrees(target: target, host: host), "\(target) with Host \(host)")
        }
        for (target, host) in [
            ("http://evil/x", "good"), ("http://h:443/x", "h"), ("https://h:80/x", "h"), ("http://h:8080/x", "h"),
            ("http://h/x", "h:8080"), ("http://h:180/x", "h"), ("https://h/x", "h:80"),
        ] {
            #expect(RequestTarget.hostDisagrees(target: target, host: host), "\(target) with Host \(host)")
        }
    }

    // MARK: Addresses, keys, connection caps

    @Test func addressRangesAndTheClientBehindTrustedProxies() {
        let ranges = ["10.0.0.0/8", "fd00::/8", "192.168.1.7"].compactMap(AddressRange.parse)
        #expect(ranges.count == 3)
        #expect(ranges.containsAddress("10.1.2.3"))
        #expect(ranges.containsAddress("::ffff:10.1.2.3"), "IPv4-mapped IPv6 matches the IPv4 range")
        #expect(ranges.containsAddress("fd12::1"))
        #expect(ranges.containsAddress("192.168.1.7"))
        #expect(!ranges.containsAddress("192.168.1.8"))
        #expect(!ranges.containsAddress("11.0.0.1"))
        #expect(!ranges.containsAddress("not-an-address"))
        for bad in ["10.0.0.0/33", "10.0.0/8", "x", "::/129", "1.2.3.4/"] { #expect(AddressRange.parse(bad) == nil, "\(bad)") }

        // Right to left, the first address that is not a trusted proxy.
        #expect(ranges.clientAddress(peer: "10.0.0.1", peerTrusted: true, forwardedFor: ["203.0.113.9, 10.0.0.2"]) == "203.0.113.9")
        #expect(ranges.clientAddress(peer: "10.0.0.1", peerTrusted: true, forwardedFor: ["6.6.6.6", "203.0.113.9"]) == "203.0.113.9",
            "a spoofed left entry is not believed")
        #expect(ranges.clientAddress(peer: "203.0.113.1", peerTrusted: ranges.containsAddress("203.0.113.1"), forwardedFor: ["6.6.6.6"]) == "203.0.113.1", "an untrusted peer is the client")
        #expect(ranges.clientAddress(peer: "10.0.0.1", peerTrusted: true, forwardedFor: ["garbage"]) == "10.0.0.1")
        #expect(ranges.clientAddress(peer: "10.0.0.1", peerTrusted: true, forwardedFor: []) == "10.0.0.1")
    }

    /// The walk over the values' bytes, left to right (what the data path uses), gives
    /// the answer of the rule as stated — from the right, the first address that is not
    /// a trusted proxy; an entry that is not an address ends the walk with the one
    /// after it — on 20 000 generated chains of trusted, untrusted, invalid, empty and
    /// padded entries over one to three fields.
    @Test func theClientBehindTrustedProxiesFromTheBytesAsByTheRule() {
        let ranges = ["10.0.0.0/8", "fd00::/8"].compactMap(AddressRange.parse)
        func byTheRule(_ values: [String]) -> String {
            var candidate = "10.0.0.1"
            let entries = values.flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces() }
            for entry in entries.reversed() {
                guard AddressRange.address(entry) != nil else { return candidate }
                candidate = entry
                if !ranges.containsAddress(entry) { return entry }
            }
            return candidate
        }
        let pieces = ["10.1.1.1", "10.2.2.2", "203.0.113.9", "198.51.100.7", "fd00::5", "2001:db8::1", "::ffff:10.9.9.9",
                      "garbage", "", " ", " 10.3.3.3", "203.0.113.10\t", "1.2.3.4.5", "unknown"]
        var random = RequestIDGenerator(seed: 11)
        for _ in 0..<20_000 {
            let values = (0...Int(random.next() % 3)).map { _ in
                (0...Int(random.next() % 4)).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }.joined(separator: ",")
            }
            let fields = values.map { [UInt8]($0.utf8) }
            let found = fields[0].withUnsafeBytes { a in
                fields[min(1, fields.count - 1)].withUnsafeBytes { b in
                    fields[fields.count - 1].withUnsafeBytes { c in
                        ranges.clientAddress(peer: "10.0.0.1", peerTrusted: true) { value in [a, b, c].prefix(fields.count).forEach(value) }
                    }
                }
            }
            #expect(found == byTheRule(values), "\(values)")
            if found != byTheRule(values) { break }
        }
        // Not an address: a NUL within, or longer than any address text.
        #expect(AddressRange.address("10.0.0.1\u{0}x") == nil)
        #expect(AddressRange.address(String(repeating: "1", count: 46)) == nil)
    }

    @Test func rateLimitKeysAreNamespacedAndBounded() {
        #expect(RateLimitKey.address("10.0.0.1") == RateLimitKey.address("10.0.0.1"))
        #expect(RateLimitKey.address("10.0.0.1") != RateLimitKey.address("10.0.0.2"))
        // Any header value, however long, is a key of the same 16 bytes.
        let huge = String(repeating: "k", count: 16_384)
        #expect(MemoryLayout.size(ofValue: RateLimitKey.header(huge)) == 16)
        #expect(RateLimitKey.header(huge) != RateLimitKey.header(huge + "k"))
        #expect(RateLimitKey.header("10.0.0.1") != RateLimitKey.address("10.0.0.1"), "a header value cannot name an address bucket")
        #expect(RateLimitKey.header("a") == RateLimitKey.header("a"))
        #expect(RateLimitKey.header("a") == Array("a".utf8).withUnsafeBytes { RateLimitKey.header($0) }, "the text and its bytes")
        #expect(RateLimitKey.header("a") != RateLimitKey.header("b"))
        #expect(RateLimitKey.address("a") == "a", "tests spell address keys as literals")
    }

    @Test func connectionCapsInTotalAndPerAddress() {
        var limits = ConnectionLimits(maxTotal: 3, maxPerClient: 2)
        #expect(limits.open(address: "a") == nil)
        #expect(limits.open(address: "a") == nil)
        #expect(limits.open(address: "a") == .perClient)
        #expect(limits.open(address: "b") == nil)
        #expect(limits.open(address: "c") == .total)
        #expect(limits.open(address: "a") == .perClient, "at both caps the per-client one answers: evicting would not help")
        #expect(limits.open == 3)
        limits.close(address: "a")
        #expect(limits.open(address: "a") == nil)
        limits.close(address: "a")
        limits.close(address: "a")
        limits.close(address: "b")
        #expect(limits.open == 0)
        #expect(limits.trackedAddresses == 0, "no memory kept for addresses without connections")
        #expect(ConnectionLimits.automaticTotal(descriptorLimit: 1024) == 480)
        #expect(ConnectionLimits.automaticTotal(descriptorLimit: 20_000) == 9968)
        #expect(ConnectionLimits.automaticTotal(descriptorLimit: 1 << 20) == 524_256)
        #expect(ConnectionLimits.automaticTotal(descriptorLimit: 1024, descriptorsPerConnection: 3) == 320)
        #expect(ConnectionLimits.automaticTotal(descriptorLimit: 100) == 64, "never below 64")
    }

    /// One IPv6 host usually holds a whole /64: a client is its /64 by default, so
    /// fresh addresses from it share one count (`limits.client_ipv6_prefix`).
    @Test(arguments: [
        ("192.0.2.7", 64, "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:aaaa::1", 56, "2001:db8:1::/56"),
        ("2001:db8:1:2ff:aaaa::1", 60, "2001:db8:1:2f0::/60"),
        ("2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1"),
        ("::1", 64, "::/64"),
        ("::ffff:192.0.2.7", 64, "192.0.2.7"),
        ("not-an-address", 64, "not-an-address"),
    ])
    func aClientIsItsIPv4AddressOrItsIPv6Network(address: String, prefix: Int, key: String) {
        #expect(AddressRange.clientKey(address, ipv6Prefix: prefix) == key)
    }

    @Test func addressesOfOneIPv6NetworkShareThePerClientCap() {
        var limits = ConnectionLimits(maxTotal: 100, maxPerClient: 2, ipv6Prefix: 64)
        #expect(limits.open(address: "2001:db8:1:2::a") == nil)
        #expect(limits.open(address: "2001:db8:1:2::b") == nil)
        #expect(limits.open(address: "2001:db8:1:2::c") == .perClient, "a third address from the same /64")
        #expect(limits.open(address: "2001:db8:1:3::a") == nil, "another /64 is another client")
        limits.close(address: "2001:db8:1:2::a")
        #expect(limits.open(address: "2001:db8:1:2::c") == nil)
        for address in ["2001:db8:1:2::b", "2001:db8:1:2::c", "2001:db8:1:3::a"] { limits.close(address: address) }
        #expect(limits.open == 0 && limits.trackedAddresses == 0)
        var apart = ConnectionLimits(maxTotal: 100, maxPerClient: 1, ipv6Prefix: 128)
        #expect(apart.open(address: "2001:db8:1:2::a") == nil)
        #expect(apart.open(address: "2001:db8:1:2::b") == nil)
    }

    @Test func theIPv6PrefixIsValidatedAndNeedsARestart() throws {
        #expect(try ConfigLoader.load(yaml: "").limits.clientIPv6Prefix == 64)
        #expect(try ConfigLoader.load(yaml: "limits: { client_ipv6_prefix: 56 }").limits.clientIPv6Prefix == 56)
        for bad in ["0", "129", "x"] {
            #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "limits: { client_ipv6_prefix: \(bad) }") }
        }
        let old = try ConfigLoader.load(yaml: "")
        let new = try ConfigLoader.load(yaml: "limits: { client_ipv6_prefix: 128 }")
        #expect(old.restartOnlyDifferences(new) == ["limits.client_ipv6_prefix"])
    }

    /// At the total with idle connections on other event loops: newcomers are let in
    /// above it, one per idle connection not yet promised (the table of
    /// `open(address:evictableElsewhere:)`); the per-client cap still answers first.
    @Test func idleConnectionsElsewhereLetNewcomersInAboveTheTotal() {
        var limits = ConnectionLimits(maxTotal: 2, maxPerClient: 2)
        #expect(limits.open(address: "a", evictableElsewhere: 5) == nil)  // below the total: no promise
        #expect(limits.open(address: "b") == nil)
        #expect(limits.evictionsPromised == 0)
        #expect(limits.open(address: "c", evictableElsewhere: 0) == .total)
        #expect(limits.open(address: "c", evictableElsewhere: 2) == nil)
        #expect(limits.open(address: "d", evictableElsewhere: 2) == nil)
        #expect(limits.open(address: "e", evictableElsewhere: 2) == .total, "both idle ones are promised")
        #expect(limits.open == 4 && limits.evictionsPromised == 2)
        // One eviction carried out (its connection counted out), one that found nothing.
        limits.close(address: "a")
        limits.evictionCarriedOut()
        limits.evictionCarriedOut()
        #expect(limits.open == 3 && limits.evictionsPromised == 0)
        #expect(limits.open(address: "e", evictableElsewhere: 1) == nil)
        limits.evictionCarriedOut()
        limits.evictionCarriedOut()  // never below zero
        #expect(limits.evictionsPromised == 0)
        #expect(limits.open(address: "e", evictableElsewhere: 9) == nil)
        #expect(limits.open(address: "e", evictableElsewhere: 9) == .perClient, "the per-client cap never evicts")
        #expect(limits.evictionsPromised == 1)

        // A promise counts as kept already: a place a local eviction frees meanwhile
        // goes to the next newcomer, not to the promise.
        var local = ConnectionLimits(maxTotal: 2, maxPerClient: 0)
        _ = local.open(address: "x")
        _ = local.open(address: "y")
        #expect(local.open(address: "z", evictableElsewhere: 1) == nil)
        #expect(local.open(address: "w") == .total)
        local.close(address: "x")  // evicted on the newcomer's own loop
        #expect(local.open(address: "w") == nil)
        #expect(local.open == 3 && local.evictionsPromised == 1)
        local.close(address: "y")  // the promise kept
        local.evictionCarriedOut()
        #expect(local.open == 2 && local.evictionsPromised == 0)
        #expect(local.open(address: "v") == .total)
    }

    // MARK: Config ranges

    @Test func aTinyRateIsRefusedAndABucketNeverOverflows() throws {
        for yaml in ["rate_limit: { global: { rate: 1e-300 } }", "rate_limit: { per_client: { rate: 0.0001 } }",
            "rate_limit: { global: { rate: 1e12 } }"]
        {
            #expect(throws: ConfigErrors.self, "\(yaml)") { try ConfigLoader.load(yaml: yaml) }
        }
        var bucket = TokenBucket(rate: 1e-300, burst: 1, now: t0)
        _ = bucket.take(now: t0)
        #expect(bucket.take(now: t0) == .denied(retryAfter: .seconds(86_400)), "clamped, no trap")
    }

    @Test func everyDurationIsBoundedAbove() {
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "timeouts: { client_body: 1000h }") }
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "drain_timeout: 200h") }
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "trusted_proxies: [10.0.0.0/40]") }
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "limits: { max_pipelined: 0 }") }
    }
}
