import FluxgateCore
import NIOCore
import NIOEmbedded
import Testing

@testable import FluxgateNIO

/// Request bodies spooled to disk before admission (``RequestBodyPlan``, ``BodySpool``):
/// a large upload takes its slot only once it is whole, goes upstream byte for byte,
/// and gives its disk back — in `EmbeddedChannel`s with a scripted upstream.
struct RequestSpoolTests {
    typealias Fixture = ProxyHandlerTests.Fixture

    static func fixture(memory: Int = 16, spool: Int = 1 << 20, _ adjust: @escaping (inout GatewayConfig) -> Void = { _ in }) throws -> Fixture {
        try Fixture {
            $0.limits.requestBufferBytes = memory
            $0.limits.requestSpoolBytes = spool
            adjust(&$0)
        }
    }

    static func payload(_ count: Int) -> String {
        String((0..<count).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
    }

    @Test func aLargeBodyIsSpooledAndAdmittedOnlyWhenWhole() throws {
        let fixture = try Self.fixture()
        let body = Self.payload(200_000)
        let cut = body.index(body.startIndex, offsetBy: 70_000)
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\nExpect: 100-continue\r\n\r\n" + body[..<cut])
        #expect(try fixture.received() == "HTTP/1.1 100 Continue\r\n\r\n", "the client may send: the gateway takes the body")
        #expect(fixture.connector.opened.isEmpty)
        #expect(fixture.runtime.gate.snapshot.inFlight == 0, "no slot held while the body arrives")
        #expect(fixture.runtime.spoolReading.reserved == 200_000, "its declared length is reserved")
        #expect(fixture.stats.traffic.bodiesSpooled == 1)

        try fixture.request(String(body[cut...]))
        #expect(fixture.connector.opened.count == 1, "admitted once whole")
        let sent = try fixture.connector.sent(0)
        #expect(sent.hasPrefix("POST /up HTTP/1.1\r\n"))
        #expect(sent.hasSuffix("\r\n\r\n" + body), "the body goes upstream byte for byte")
        #expect(fixture.runtime.spoolReading.reserved == 0, "sent: the file closed, the reservation back")
        try fixture.connector.answer(0, ProxyHandlerTests.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    /// Whole on disk before admission, it goes upstream with its length, as it would
    /// from memory (``Exchange/UpstreamBodyFraming/heldUnframed``).
    @Test func aChunkedBodyGoesToDiskWhenItOutgrowsMemoryThenUpstreamWithItsLength() throws {
        let fixture = try Self.fixture { $0.limits.maxBodyBytes = 100_000 }
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        try fixture.request("a\r\n0123456789\r\n")
        #expect(fixture.runtime.spoolReading.reserved == 0, "10 bytes: still in memory")
        try fixture.request("14\r\nabcdefghijabcdefghij\r\n")
        #expect(fixture.runtime.spoolReading.reserved == 100_000, "past 16 bytes: on disk, max_body_bytes reserved")
        #expect(fixture.connector.opened.isEmpty, "still not admitted")
        try fixture.request("3\r\nxyz\r\n0\r\n\r\n")
        #expect(fixture.connector.opened.count == 1)
        let sent = try fixture.connector.sent(0)
        #expect(sent.hasPrefix("POST /up HTTP/1.1\r\ncontent-length: 33\r\nHost: h\r\nx-forwarded-for: "), "\(sent)")
        #expect(!sent.lowercased().contains("transfer-encoding"))
        #expect(sent.hasSuffix("\r\n\r\n0123456789abcdefghijabcdefghijxyz"))
        #expect(fixture.runtime.spoolReading.reserved == 0)
    }

    /// The spool holds the payload, not the client's chunk framing: a body of one-byte
    /// chunks (eight bytes on the wire each) fits a reservation of `max_body_bytes` and
    /// leaves in the spool's chunks; one byte more than the limit is a 413, not a spool error.
    @Test func tinyChunksAreSpooledAsPayloadAndTheLimitIsStill413() throws {
        let fixture = try Self.fixture { $0.limits.maxBodyBytes = 100 }
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index in 0..<100 { try fixture.request("1\r\n\(index % 10)\r\n") }
        #expect(fixture.connector.opened.isEmpty)
        try fixture.request("0\r\nX-Sum: 450\r\n\r\n")
        let sent = try fixture.connector.sent(0)
        let digits = String((0..<100).map { Character("\($0 % 10)") })
        let inMemory = (0..<17).map { "1\r\n\($0 % 10)\r\n" }.joined()  // up to the 17th byte, past the 16 held in memory
        #expect(sent.hasSuffix("\r\n\r\n" + inMemory + "53\r\n" + digits.dropFirst(17) + "\r\n0\r\nX-Sum: 450\r\n\r\n"), "\(sent.suffix(300))")

        let over = try Self.fixture { $0.limits.maxBodyBytes = 100 }
        try over.request("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index in 0..<101 { try over.request("1\r\n\(index % 10)\r\n") }
        #expect(try over.received().hasPrefix("HTTP/1.1 413 Payload Too Large\r\n"))
        #expect(over.runtime.spoolReading.reserved == 0)
    }

    @Test func aBodyTheBudgetCannotTakeStreamsAfterAdmission() throws {
        let fixture = try Self.fixture(spool: 1_000)
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + Self.payload(100))
        #expect(fixture.connector.opened.count == 1, "admitted on its head, as with spooling off")
        #expect(fixture.stats.traffic.spoolBudgetRefusals == 1)
        #expect(fixture.runtime.spoolReading.reserved == 0)
        try fixture.request(Self.payload(4_900))
        #expect(try fixture.connector.sent(0).hasSuffix(Self.payload(100) + Self.payload(4_900)))
    }

    @Test func withSpoolingOffALargeBodyStreams() throws {
        let fixture = try Self.fixture(spool: 0)
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n")
        #expect(fixture.connector.opened.count == 1)
        #expect(fixture.stats.traffic.spoolBudgetRefusals == 0, "off is not a refusal")
    }

    /// `limits.stream_body_prefixes`: on those paths a large body streams from its head
    /// (admitted at once, the upstream sees bytes as they come); elsewhere it is spooled.
    @Test func streamedPathsAreAdmittedOnTheHead() throws {
        let fixture = try Self.fixture { $0.limits.streamBodyPrefixes = ["/ingest"] }
        try fixture.request("POST /ingest/logs HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\nfirst")
        #expect(fixture.connector.opened.count == 1)
        #expect(try fixture.connector.sent(0).hasSuffix("\r\n\r\nfirst"))
        #expect(fixture.stats.traffic.bodiesSpooled == 0)

        let other = try Self.fixture { $0.limits.streamBodyPrefixes = ["/ingest"] }
        try other.request("POST /ingestion HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\nfirst")
        #expect(other.connector.opened.isEmpty)
        #expect(other.stats.traffic.bodiesSpooled == 1)
    }

    @Test func aSpoolThatCannotBeCreatedIsA500() throws {
        let fixture = try Self.fixture { $0.limits.requestSpoolDir = "/nonexistent/fluxgate-spool" }
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n")
        let answer = try fixture.received()
        #expect(answer.hasPrefix("HTTP/1.1 500 Internal Server Error\r\n"))
        #expect(answer.contains("spool_failed"))
        #expect(answer.lowercased().contains("connection: close"))
        #expect(fixture.connector.opened.isEmpty)
        #expect(fixture.runtime.spoolReading.reserved == 0, "the reservation went back")
    }

    /// A write that fails mid-body (here: past the reservation, as a full disk would)
    /// answers 500 once and opens nothing more for the dead exchange.
    @Test func aSpoolWriteFailureIs500AndTheExchangeIsOver() throws {
        let fixture = try Self.fixture()
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + Self.payload(100))
        let spool = try #require(fixture.runtime.spoolReading.reserved == 5_000 ? handlerSpool(fixture) : nil)
        try spool.append(ByteBuffer(string: Self.payload(4_900)))  // the reservation is now full
        try fixture.request(Self.payload(10))
        let answer = try fixture.received()
        #expect(answer.hasPrefix("HTTP/1.1 500 Internal Server Error\r\n"))
        #expect(fixture.stats.traffic.bodiesSpooled == 1, "no second spool for the ended exchange")
        #expect(fixture.runtime.spoolReading.reserved == 0)
        #expect(fixture.connector.opened.isEmpty)
    }

    func handlerSpool(_ fixture: Fixture) throws -> BodySpool? {
        let handler = try fixture.client.pipeline.syncOperations.handler(type: ProxyHandler.self)
        guard case .active(let exchange) = handler.state else { return nil }
        return exchange.spool
    }

    @Test func aClientThatLeavesMidUploadGivesTheSpoolBack() throws {
        let fixture = try Self.fixture()
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + Self.payload(1_000))
        #expect(fixture.runtime.spoolReading.reserved == 5_000)
        try fixture.client.close().wait()
        #expect(fixture.runtime.spoolReading.reserved == 0)
        #expect(fixture.connector.opened.isEmpty)
    }

    /// The spooled body goes out as fast as the upstream takes it: paused while its
    /// connection is not writable, resumed when it is, and an upstream that stops
    /// taking it is `upstream_send`'s (504), not a request already sent.
    @Test func theSpoolFollowsTheUpstreamsWritability() throws {
        let fixture = try Self.fixture {
            $0.timeouts.upstreamSend = .seconds(2)
            $0.timeouts.upstreamHeader = .seconds(60)
        }
        fixture.connector.startUnwritable = true
        let body = Self.payload(150_000)
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 150000\r\n\r\n" + body)
        let upstream = try #require(fixture.connector.opened.first?.channel)
        #expect(try fixture.connector.sent(0).hasPrefix("POST /up HTTP/1.1\r\n"), "the head went; the body waits")
        #expect(fixture.runtime.spoolReading.reserved == 150_000)

        upstream.isWritable = true
        upstream.pipeline.fireChannelWritabilityChanged()
        #expect(try fixture.connector.sent(0) == body)
        #expect(fixture.runtime.spoolReading.reserved == 0)

        let stalled = try Self.fixture { $0.timeouts.upstreamSend = .seconds(2) }
        stalled.connector.startUnwritable = true
        try stalled.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 150000\r\n\r\n" + body)
        stalled.loop.advanceTime(by: .milliseconds(2100))
        #expect(try stalled.received().hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(stalled.stats.traffic.timeouts[ExchangeDeadlines.Expiry.upstreamSend.index] == 1)
        #expect(stalled.runtime.spoolReading.reserved == 0)
    }

    /// An idempotent request's spooled body is held until the answer's head: when the
    /// reused keep-alive connection it went to closes unanswered, the whole body goes
    /// again on a fresh connection, byte for byte — a chunked one with its trailers —
    /// and the disk goes back once the head reached the client.
    @Test func aHeldSpooledBodyIsResentWhenAStaleConnectionCloses() throws {
        let fixture = try Self.fixture {
            $0.limits.maxBodyBytes = 300_000
            $0.upstreams = Array($0.upstreams.prefix(1))  // every request on the one keep-alive connection
        }
        fixture.connector.reuseReleased = true
        try fixture.request("GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
        try fixture.connector.answer(0, ProxyHandlerTests.ok)
        _ = try fixture.connector.sent(0)

        let body = Self.payload(200_000)
        try fixture.request("PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n" + body)
        #expect(fixture.connector.opened.count == 1, "the keep-alive connection was reused")
        #expect(try fixture.connector.sent(0).hasSuffix("\r\n\r\n" + body))
        #expect(fixture.runtime.spoolReading.reserved == 200_000, "sent, and held for a resend")

        try fixture.connector.opened[0].channel.close().wait()
        try #require(fixture.connector.opened.count == 2, "sent again on a fresh connection")
        let resent = try fixture.connector.sent(1)
        #expect(resent.hasPrefix("PUT /up HTTP/1.1\r\n"))
        #expect(resent.hasSuffix("\r\n\r\n" + body), "the whole body again, from its first byte")
        try fixture.connector.answer(1, ProxyHandlerTests.ok)
        #expect(try fixture.received().components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 3)
        #expect(fixture.runtime.spoolReading.reserved == 0, "the head went to the client: the disk is back")

        // Chunked, past memory into the spool, with trailers: the same bytes both times.
        try fixture.request("PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
        try fixture.request("14\r\nabcdefghijabcdefghij\r\n0\r\nX-Sum: 1\r\n\r\n")
        let first = try fixture.connector.sent(1)
        #expect(first.hasSuffix("\r\n\r\na\r\n0123456789\r\n14\r\nabcdefghijabcdefghij\r\n0\r\nX-Sum: 1\r\n\r\n"), "\(first)")
        try fixture.connector.opened[1].channel.close().wait()
        try #require(fixture.connector.opened.count == 3)
        #expect(try fixture.connector.sent(2) == first)
        #expect(fixture.stats.traffic.retriesByCause == ProxyHandlerTests.only(.staleConnection, 2), "counted as stale-connection resends")
    }

    /// A POST's body is not held (it is never resent): the spool closes once sent, and a
    /// stale connection's close is a 502 as before.
    @Test func aPostsSpooledBodyIsNotHeld() throws {
        let fixture = try Self.fixture { $0.upstreams = Array($0.upstreams.prefix(1)) }
        fixture.connector.reuseReleased = true
        try fixture.request("GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
        try fixture.connector.answer(0, ProxyHandlerTests.ok)
        _ = try fixture.received()
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + Self.payload(5_000))
        #expect(fixture.runtime.spoolReading.reserved == 0)
        try fixture.connector.opened[0].channel.close().wait()
        #expect(fixture.connector.opened.count == 1)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
    }

    /// An idempotent request's spooled body goes with a retry on a 503, whole.
    @Test func aHeldSpooledBodyGoesWithARetryElsewhere() throws {
        let fixture = try Self.fixture()
        let body = Self.payload(100_000)
        try fixture.request("PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" + body)
        #expect(try fixture.connector.sent(0).hasSuffix(body))
        try fixture.connector.answer(0, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        try #require(fixture.connector.opened.map(\.upstream) == [0, 1])
        #expect(try fixture.connector.sent(1).hasSuffix("\r\n\r\n" + body))
        #expect(fixture.runtime.spoolReading.reserved == 100_000)
        try fixture.connector.answer(1, ProxyHandlerTests.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(fixture.runtime.spoolReading.reserved == 0)
        #expect(fixture.stats.traffic.outcomes == .init(proxied: 1, retries: 1))
    }
}
