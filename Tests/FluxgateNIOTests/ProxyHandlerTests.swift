import FluxgateCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

@testable import FluxgateNIO

/// `ProxyHandler` without sockets: the client is an `EmbeddedChannel`, and every
/// upstream connection is another `EmbeddedChannel` on the same `EmbeddedEventLoop`,
/// handed out by a scripted ``UpstreamConnector``. Failover, retries and the
/// response-head timeout are driven by writing bytes and advancing virtual time.
struct ProxyHandlerTests {
    /// Hands out upstream connections in embedded channels; refuses the upstreams in `refused`.
    final class ScriptedConnector: UpstreamConnector {
        let loop: EmbeddedEventLoop
        let live: LiveObjects
        var refused: Set<Int> = []
        /// Connects fail as the gateway's own descriptor exhaustion (EMFILE).
        var outOfDescriptors = false
        /// New connections start not writable (the upstream's socket buffer full).
        var startUnwritable = false
        /// Released connections are handed out again (as a pool's keep-alive ones, with
        /// `servedRequests` counted); off, every request opens a new one.
        var reuseReleased = false
        /// Every connection opened, in order, with its upstream.
        private(set) var opened: [(upstream: Int, channel: EmbeddedChannel)] = []
        private(set) var released: [UpstreamConnection] = []
        private var ids = RequestIDGenerator(seed: 7)

        init(loop: EmbeddedEventLoop, live: LiveObjects) {
            self.loop = loop
            self.live = live
        }

        var eventLoop: any EventLoop { loop }
        func takeIdle(_ upstream: Int) -> UpstreamConnection? {
            guard reuseReleased, let index = released.firstIndex(where: { $0.upstreamIndex == upstream }) else { return nil }
            return released.remove(at: index)
        }
        func release(_ connection: UpstreamConnection, now: MonotonicTime) {
            connection.servedRequests += 1
            released.append(connection)
        }
        func nextRequestID() -> RequestID { ids.nextID() }
        func nextJitter() -> Double { 0 }

        @discardableResult
        func connect(_ upstream: Int, _ completion: @escaping (Result<UpstreamConnection, any Error>) -> Void) -> CapWait? {
            if refused.contains(upstream) {
                completion(.failure(IOError(errnoCode: ECONNREFUSED, reason: "connect")))
                return nil
            }
            if outOfDescriptors {
                completion(.failure(IOError(errnoCode: EMFILE, reason: "socket")))
                return nil
            }
            let connection = UpstreamConnection(upstreamIndex: upstream, live: live)
            let channel = EmbeddedChannel(handler: connection, loop: loop)
            _ = channel.connect(to: try! SocketAddress(ipAddress: "127.0.0.1", port: 1))
            if startUnwritable {
                // As NIO does when a socket's buffer fills: the flag, then the event
                // (handlers keep the flag from the event: UpstreamConnection.isWritable).
                channel.isWritable = false
                channel.pipeline.fireChannelWritabilityChanged()
            }
            opened.append((upstream, channel))
            completion(.success(connection))
            return nil
        }

        func cancelWait(_ wait: CapWait) {}

        /// What the gateway wrote to the `index`-th connection opened.
        func sent(_ index: Int) throws -> String {
            var text = ""
            while let buffer = try opened[index].channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }

        func answer(_ index: Int, _ response: String) throws {
            try opened[index].channel.writeInbound(ByteBuffer(string: response))
        }
    }

    struct Fixture {
        let loop = EmbeddedEventLoop()
        let client: EmbeddedChannel
        let runtime: GatewayRuntime
        let connector: ScriptedConnector
        /// The handler's metrics, where every exchange's end is counted.
        let stats = LoopStats()

        init(timeouts: ClientConnectionTimeouts? = nil, _ adjust: (inout GatewayConfig) -> Void = { _ in }) throws {
            var config = try makeConfig(upstreams: ["http://127.0.0.1:9", "http://127.0.0.1:10"]) { config in
                config.rateLimit.global.enabled = false
                config.rateLimit.perClient.enabled = false
                config.healthCheck.passive.enabled = true
                config.healthCheck.passive.consecutiveFailures = 5
                config.timeouts.upstreamHeader = .seconds(5)
            }
            adjust(&config)
            runtime = try GatewayRuntime(config: config)
            connector = ScriptedConnector(loop: loop, live: runtime.live)
            client = EmbeddedChannel(loop: loop)
            try client.pipeline.syncOperations.addHandler(ProxyHandler(runtime: runtime, pool: connector, timeouts: timeouts, stats: stats))
            _ = client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2))
        }

        func request(_ text: String) throws { try client.writeInbound(ByteBuffer(string: text)) }

        func received() throws -> String {
            var text = ""
            while let buffer = try client.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }
    }

    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    /// `fluxgate_retries_total{cause}` when every retry had `cause`.
    static func only(_ cause: RetryCause, _ count: Int = 1) -> [Int] {
        RetryCause.allCases.map { $0 == cause ? count : 0 }
    }

    /// Below the TLS handler's place: the bytes written between two flushes.
    final class FlushRecorder: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var pending = 0
        var flushed: [Int] = []
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            pending += unwrapOutboundIn(data).readableBytes
            context.write(data, promise: promise)
        }
        func flush(context: ChannelHandlerContext) {
            if pending > 0 { flushed.append(pending) }
            pending = 0
            context.flush()
        }
    }

    final class Tail: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
    }

    /// The pacing every TLS client connection gets (responses, answers, tunnels): no
    /// more than the limit between flushes, counting what was written before; the
    /// write's promise goes with its last piece.
    @Test func writesAreFlushedEveryLimitBytes() throws {
        let channel = EmbeddedChannel()
        let recorder = FlushRecorder()
        let tail = Tail()
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.pipeline.syncOperations.addHandler(TLSWritePacer(limit: 400))
        try channel.pipeline.syncOperations.addHandler(tail)
        let context = try channel.pipeline.syncOperations.context(handler: tail)
        context.write(NIOAny(ByteBuffer(repeating: 1, count: 100)), promise: nil)  // written before, not flushed yet
        let written = channel.embeddedEventLoop.makePromise(of: Void.self)
        context.write(NIOAny(ByteBuffer(repeating: 1, count: 1_000)), promise: written)
        #expect(recorder.flushed == [400, 400])
        #expect(recorder.pending == 300)
        context.flush()
        #expect(recorder.flushed == [400, 400, 300])
        try written.futureResult.wait()
        _ = try? channel.finish()
    }

    /// swift-nio-ssl keeps its ciphertext buffer at the largest size one flush needed,
    /// for the connection's life: a TLS client connection is written at most one
    /// record's worth between flushes (a plain one as the upstream's bytes come).
    @Test func aTLSClientIsWrittenARecordsWorthPerFlush() throws {
        for https in [true, false] {
            let loop = EmbeddedEventLoop()
            let runtime = try GatewayRuntime(config: try makeConfig(upstreams: ["http://127.0.0.1:9"]))
            let connector = ScriptedConnector(loop: loop, live: runtime.live)
            let client = EmbeddedChannel(loop: loop)
            let recorder = FlushRecorder()
            try client.pipeline.syncOperations.addHandler(recorder)
            // As the gateway builds a TLS connection's pipeline (behind NIOSSLServerHandler).
            if https { try client.pipeline.syncOperations.addHandler(TLSWritePacer()) }
            try client.pipeline.syncOperations.addHandler(ProxyHandler(runtime: runtime, pool: connector, timeouts: nil, https: https))
            _ = client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2))
            try client.writeInbound(ByteBuffer(string: "GET /big HTTP/1.1\r\nHost: h\r\n\r\n"))
            let body = String(repeating: "x", count: 100_000)
            try connector.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + body)
            var text = ""
            while let buffer = try client.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            #expect(text.hasSuffix(body) && text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            if https {
                #expect(recorder.flushed.count >= 7)
                #expect(recorder.flushed.allSatisfy { $0 <= TLSWritePacer.recordRoom }, "\(recorder.flushed)")
            } else {
                #expect(recorder.flushed.count == 1, "\(recorder.flushed)")
            }
            #expect(recorder.flushed.reduce(0, +) == text.utf8.count)
            _ = try? client.finish()
        }
    }

    /// An upgrade request the upstream answered in HTTP (404 here) leaves its upstream
    /// connection in an unknown state — llhttp-based servers, the demo among them, stop
    /// parsing HTTP on it — so it is closed, not pooled for the next request.
    @Test func anUpstreamThatDeclinedAnUpgradeIsNotReused() throws {
        let fixture = try Fixture()
        try fixture.request(
            "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        let sent = try fixture.connector.sent(0)
        #expect(sent.lowercased().contains("upgrade: websocket\r\n"))  // the Upgrade went upstream
        try fixture.connector.answer(0, "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")
        let answer = try fixture.received()
        #expect(answer.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(fixture.connector.released.isEmpty)
        #expect(!fixture.connector.opened[0].channel.isActive)

        // Without an Upgrade the same answer leaves the connection pooled.
        let plain = try Fixture()
        try plain.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        try plain.connector.answer(0, "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")
        #expect(try plain.received().hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(plain.connector.released.count == 1)
    }

    /// A chunked body of tiny chunks goes upstream as one chunk per read, not one per
    /// client chunk: 1-byte chunks made the gateway hold a buffer (and send a chunk-size
    /// line) per payload byte — 50 clients × 64 KiB took it from 31 to 445 MB.
    /// A body that streams (`stream_body_prefixes`) is re-chunked one chunk per read.
    @Test func tinyChunksGoUpstreamAsOneChunkPerRead() throws {
        let fixture = try Fixture { $0.limits.streamBodyPrefixes = ["/up"] }
        let tiny = String(repeating: "1\r\nx\r\n", count: 1000)
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + tiny)
        try fixture.request(String(repeating: "2\r\nyz\r\n", count: 10) + "0\r\n\r\n")
        let sent = try fixture.connector.sent(0)
        let body = sent.split(separator: "\r\n\r\n", maxSplits: 1).last.map(String.init) ?? ""
        #expect(body == "3e8\r\n" + String(repeating: "x", count: 1000) + "\r\n14\r\n" + String(repeating: "yz", count: 10) + "\r\n0\r\n\r\n")
        try fixture.connector.answer(0, Self.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    /// A closing answer whose write never completes (a client that stopped reading, a
    /// TLS handshake that never finished) does not keep the connection: it closes after
    /// `timeouts.client_send` (30 s by default).
    @Test func aClosingAnswerThatCannotBeWrittenStillEndsTheConnection() throws {
        let loop = EmbeddedEventLoop()
        let config = try makeConfig(upstreams: ["http://127.0.0.1:9"])
        let runtime = try GatewayRuntime(config: config)
        let connector = ScriptedConnector(loop: loop, live: runtime.live)
        let client = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandler(HandlerTests.WriteSwallower())
        try client.pipeline.syncOperations.addHandler(ProxyHandler(runtime: runtime, pool: connector, timeouts: nil))
        _ = client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2))
        try client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"))  // 400, close
        loop.advanceTime(by: .milliseconds(29_999))
        #expect(client.isActive)
        loop.advanceTime(by: .milliseconds(1))
        #expect(!client.isActive)
    }

    /// `limits.max_header_count`: a head with one field more is answered 431
    /// `too_many_headers` and the connection closes, before any upstream work; at the
    /// limit it is proxied with every field.
    @Test func moreHeaderFieldsThanTheLimitGet431() throws {
        func head(fields: Int) -> String {
            "GET /x HTTP/1.1\r\nHost: h\r\n" + (1..<fields).map { "X-F\($0): v\r\n" }.joined() + "\r\n"
        }
        let over = try Fixture { $0.limits.maxHeaderCount = 5 }
        try over.request(head(fields: 6))
        let answer = try over.received()
        #expect(answer.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        #expect(answer.contains(#""error":"too_many_headers""#))
        #expect(answer.contains("limits.max_header_count"))
        #expect(over.connector.opened.isEmpty)
        #expect(over.stats.traffic.headRefusals[HeadRefusal.headersTooLarge.rawValue] == 1)

        let at = try Fixture { $0.limits.maxHeaderCount = 5 }
        try at.request(head(fields: 5))
        #expect(try at.connector.sent(0).contains("X-F4: v\r\n"))
        try at.connector.answer(0, Self.ok)
        #expect(try at.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    @Test func aRefusedConnectMovesToTheNextUpstreamAndCountsAgainstTheFirst() throws {
        let fixture = try Fixture()
        fixture.connector.refused = [0]
        try fixture.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(fixture.connector.opened.map(\.upstream) == [1])
        #expect(try fixture.connector.sent(0).hasPrefix("GET /x HTTP/1.1\r\n"))
        try fixture.connector.answer(0, Self.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(fixture.stats.traffic.outcomes == .init(proxied: 1, retries: 1))
        #expect(fixture.stats.traffic.retriesByCause == Self.only(.connectFailed))
        #expect(fixture.runtime.health.state(0).consecutiveFailures == 1)
        #expect(fixture.connector.released.count == 1)  // the good connection goes back for reuse
    }

    /// The target and the client's `X-Request-ID` are held in the exchange up to 64
    /// bytes each (``InlineText``) and in a `String` beyond: at, just past and far past
    /// the capacity they go upstream and back to the client byte for byte.
    @Test(arguments: [(64, 64), (65, 65), (4000, 200), (1, 1)])
    func longTargetsAndRequestIDsGoThroughWhole(_ targetLength: Int, _ idLength: Int) throws {
        let fixture = try Fixture()
        let target = targetLength == 1 ? "/" : "/api/" + String(repeating: "x", count: targetLength - 7) + "?q"
        let id = String((0..<idLength).map { Character(UnicodeScalar(UInt8(0x30 + $0 % 10))) })
        #expect(target.utf8.count == targetLength)
        try fixture.request("GET \(target) HTTP/1.1\r\nHost: h\r\nX-Request-ID: \(id)\r\n\r\n")
        let sent = try fixture.connector.sent(0)
        #expect(sent.hasPrefix("GET \(target) HTTP/1.1\r\n"))
        #expect(sent.lowercased().contains("x-request-id: \(id)\r\n"))
        try fixture.connector.answer(0, Self.ok)
        let text = try fixture.received()
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("x-request-id: \(id)\r\n"))
    }

    /// The gateway's own EMFILE is not the upstreams' fault: 503, no failover, no
    /// passive failure — before this, the stress test ejected every upstream for it.
    @Test func runningOutOfDescriptorsIs503WithoutBlamingAnUpstream() throws {
        let fixture = try Fixture()
        fixture.connector.outOfDescriptors = true
        try fixture.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        let answer = try fixture.received()
        #expect(answer.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(answer.contains(#""error":"gateway_out_of_resources""#))
        #expect(fixture.connector.opened.isEmpty)
        #expect(fixture.runtime.health.state(0).consecutiveFailures == 0)
        #expect(fixture.runtime.health.state(1).consecutiveFailures == 0)
        #expect(fixture.stats.traffic.outcomes == .init(gatewayAnswers: 1))
    }

    @Test func an503FromAnUpstreamIsRetriedElsewhereAndNeverSeenByTheClient() throws {
        let fixture = try Fixture()
        try fixture.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        try fixture.connector.answer(0, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        #expect(!fixture.connector.opened[0].channel.isActive)  // its body unread: closed, not reused
        #expect(fixture.connector.opened.map(\.upstream) == [0, 1])
        #expect(try fixture.connector.sent(1).hasPrefix("GET /x HTTP/1.1\r\n"))
        try fixture.connector.answer(1, Self.ok)
        let text = try fixture.received()
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(!text.contains("HTTP/1.1 503"))
        #expect(fixture.stats.traffic.outcomes == .init(proxied: 1, retries: 1))
        #expect(fixture.stats.traffic.retriesByCause == Self.only(.status))
        #expect(fixture.runtime.health.state(0).consecutiveFailures == 1)
    }

    /// A body read whole before admission is held until the answer's head: an
    /// idempotent request goes to the other upstream with it, byte for byte.
    @Test func anIdempotentRequestsHeldBodyGoesWithItsRetry() throws {
        let fixture = try Fixture()
        try fixture.request("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
        try fixture.connector.answer(0, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        try #require(fixture.connector.opened.map(\.upstream) == [0, 1])
        let resent = try fixture.connector.sent(1)
        #expect(resent.hasPrefix("PUT /x HTTP/1.1\r\n"))
        #expect(resent.hasSuffix("\r\n\r\nhi"))
        try fixture.connector.answer(1, Self.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(fixture.stats.traffic.outcomes == .init(proxied: 1, retries: 1))
    }

    /// A chunked body read whole before admission goes upstream with `Content-Length`,
    /// as nginx sends its buffered bodies: an upstream that cannot read chunked request
    /// bodies (Python's `http.server`, an HTTP/1.0 server) gets it whole — through a
    /// retry too. With trailers, or once it outgrew memory and streams, chunked it stays.
    @Test func aChunkedBodyReadWholeGoesUpstreamWithItsLength() throws {
        let fixture = try Fixture()
        try fixture.request("PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        try fixture.request("6\r\n world\r\n0\r\n\r\n")
        let sent = try fixture.connector.sent(0)
        #expect(sent.hasPrefix("PUT /x HTTP/1.1\r\ncontent-length: 11\r\nHost: h\r\nx-forwarded-for: "), "\(sent)")
        #expect(!sent.lowercased().contains("transfer-encoding"))
        #expect(sent.hasSuffix("\r\n\r\nhello world"))
        try fixture.connector.answer(0, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        try #require(fixture.connector.opened.map(\.upstream) == [0, 1])
        #expect(try fixture.connector.sent(1) == sent, "the retry carries the same head and body")
        try fixture.connector.answer(1, Self.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))

        let trailers = try Fixture()
        try trailers.request("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n")
        let chunked = try trailers.connector.sent(0)
        #expect(chunked.contains("\r\nTransfer-Encoding: chunked\r\n") && !chunked.contains("content-length"))
        #expect(chunked.hasSuffix("\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n"))

        // Spooling off: past memory (16 bytes) the request is admitted and the rest streams.
        let streamed = try Fixture {
            $0.limits.requestBufferBytes = 16
            $0.limits.requestSpoolBytes = 0
        }
        try streamed.request("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
        try streamed.request("a\r\nabcdefghij\r\n")
        try streamed.request("2\r\nyz\r\n0\r\n\r\n")
        let rest = try streamed.connector.sent(0)
        #expect(rest.contains("\r\nTransfer-Encoding: chunked\r\n") && !rest.contains("content-length"))
        #expect(rest.hasSuffix("\r\n\r\na\r\n0123456789\r\na\r\nabcdefghij\r\n2\r\nyz\r\n0\r\n\r\n"), "\(rest)")
    }

    /// Not retried with a body: a POST (not idempotent), and a body that streamed after
    /// admission (here: the spool budget could not take it), of which nothing is held.
    @Test func aPostOrAStreamedBodyIsNotRetried() throws {
        let post = try Fixture()
        try post.request("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
        try post.connector.answer(0, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        #expect(post.connector.opened.count == 1)
        #expect(try post.received().hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(post.stats.traffic.outcomes == .init(proxied: 1))

        let streamed = try Fixture {
            $0.limits.requestBufferBytes = 16
            $0.limits.requestSpoolBytes = 100
        }
        try streamed.request("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 200\r\n\r\n" + String(repeating: "b", count: 200))
        try streamed.connector.answer(0, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        #expect(streamed.connector.opened.count == 1)
        #expect(try streamed.received().hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
    }

    @Test func noResponseHeadInTimeIs504AndAPassiveFailure() throws {
        let fixture = try Fixture { $0.retry.onTimeout = false }
        try fixture.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        fixture.loop.advanceTime(by: .milliseconds(4_999))
        #expect(try fixture.received().isEmpty)
        fixture.loop.advanceTime(by: .milliseconds(1))
        #expect(try fixture.received().hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(!fixture.connector.opened[0].channel.isActive)
        #expect(fixture.runtime.health.state(0).consecutiveFailures == 1)
        #expect(fixture.stats.traffic.outcomes == .init(gatewayAnswers: 1))
        #expect(fixture.runtime.gate.snapshot.inFlight == 0)
    }

    /// `retry.on_timeout` (default): an idempotent request whose upstream sent no head
    /// within `upstream_header` goes once to another upstream, its held body with it;
    /// the first upstream's connection is closed and counted as a passive failure, and
    /// the second attempt has an `upstream_header` of its own.
    @Test func noResponseHeadInTimeIsRetriedOnceElsewhere() throws {
        let fixture = try Fixture()
        try fixture.request("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
        #expect(try fixture.connector.sent(0).hasSuffix("\r\n\r\nhi"))
        fixture.loop.advanceTime(by: .milliseconds(4_999))
        #expect(fixture.connector.opened.count == 1)
        fixture.loop.advanceTime(by: .milliseconds(1))
        try #require(fixture.connector.opened.map(\.upstream) == [0, 1])
        #expect(!fixture.connector.opened[0].channel.isActive)
        #expect(fixture.runtime.health.state(0).consecutiveFailures == 1)
        #expect(fixture.runtime.health.failures(0) == [.timeout: 1, .connect: 0, .reset: 0, .status5xx: 0, .malformed: 0])
        let resent = try fixture.connector.sent(1)
        #expect(resent.hasPrefix("PUT /x HTTP/1.1\r\n"))
        #expect(resent.hasSuffix("\r\n\r\nhi"))
        fixture.loop.advanceTime(by: .milliseconds(4_999))
        #expect(try fixture.received().isEmpty)
        try fixture.connector.answer(1, Self.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(fixture.stats.traffic.outcomes == .init(proxied: 1, retries: 1))
        #expect(fixture.stats.traffic.retriesByCause == Self.only(.timeout))
        #expect(fixture.stats.traffic.timeouts.allSatisfy { $0 == 0 })
        #expect(fixture.runtime.gate.snapshot.inFlight == 0)
    }

    /// Never twice: when the second upstream is as silent, the client gets the 504 one
    /// `upstream_header` later, both upstreams are charged, the retry budget's place
    /// is given back; a POST is never retried after a timeout.
    @Test func aSecondTimeoutOrAPostsTimeoutIs504() throws {
        let fixture = try Fixture()
        try fixture.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        fixture.loop.advanceTime(by: .seconds(5))
        fixture.loop.advanceTime(by: .milliseconds(4_999))
        #expect(try fixture.received().isEmpty)
        fixture.loop.advanceTime(by: .milliseconds(1))
        #expect(try fixture.received().hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(fixture.connector.opened.count == 2)
        #expect(fixture.connector.opened.allSatisfy { !$0.channel.isActive })
        #expect(fixture.runtime.health.state(0).consecutiveFailures == 1)
        #expect(fixture.runtime.health.state(1).consecutiveFailures == 1)
        #expect(fixture.stats.traffic.outcomes == .init(gatewayAnswers: 1, retries: 1))
        #expect(fixture.stats.traffic.timeouts[ExchangeDeadlines.Expiry.upstreamHeader.index] == 1)
        #expect(fixture.runtime.startRetry() && fixture.runtime.startRetry() && fixture.runtime.startRetry())

        let post = try Fixture()
        try post.request("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
        post.loop.advanceTime(by: .seconds(5))
        #expect(try post.received().hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(post.connector.opened.count == 1)
        #expect(post.stats.traffic.outcomes == .init(gatewayAnswers: 1))
    }

    /// A fresh upstream connection closed before the whole response head (nothing or
    /// part of it came): the upstream failed the request, which goes once to another
    /// upstream, as after a 502; a POST gets the 502.
    @Test func aCloseBeforeTheResponseHeadIsRetriedElsewhere() throws {
        for partial in ["", "HTTP/1.1 200 OK\r\nContent-"] {
            let fixture = try Fixture()
            try fixture.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            if !partial.isEmpty { try fixture.connector.answer(0, partial) }
            try fixture.connector.opened[0].channel.close().wait()
            try #require(fixture.connector.opened.map(\.upstream) == [0, 1])
            #expect(try fixture.connector.sent(1).hasPrefix("GET /x HTTP/1.1\r\n"))
            #expect(fixture.runtime.health.state(0).consecutiveFailures == 1)
            #expect(fixture.runtime.health.failures(0)[.reset] == 1)
            try fixture.connector.answer(1, Self.ok)
            let answer = try fixture.received()
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.hasSuffix("\r\n\r\nok"), "\(answer)")
            #expect(fixture.stats.traffic.outcomes == .init(proxied: 1, retries: 1))
            #expect(fixture.stats.traffic.retriesByCause == Self.only(.closedBeforeHead))
        }
        let post = try Fixture()
        try post.request("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
        try post.connector.opened[0].channel.close().wait()
        #expect(post.connector.opened.count == 1)
        #expect(try post.received().hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(post.runtime.health.state(0).consecutiveFailures == 1)
    }

    @Test func pipelinedRequestsEachEndOnceInOrder() throws {
        let fixture = try Fixture()
        try fixture.request("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(fixture.connector.opened.count == 1)  // the second waits for the first's answer
        try fixture.connector.answer(0, Self.ok)
        #expect(fixture.connector.opened.count == 2)
        #expect(try fixture.connector.sent(1).hasPrefix("GET /2 HTTP/1.1\r\n"))
        try fixture.connector.answer(1, Self.ok)
        #expect(try fixture.received().components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        #expect(fixture.stats.traffic.outcomes == .init(proxied: 2))
    }

    /// A client that pipelines without taking its answers: while the answers written
    /// wait (the channel past its high watermark), the next pipelined request is not
    /// started and nothing more is read; once the client takes them, the rest follow
    /// in order. (Before, the gateway answered everything a client sent and held the
    /// answers: one connection pipelining 17 MB of `GET /health` took its RSS from 32
    /// to 219 MB.)
    @Test func pipelinedRequestsWaitWhileTheClientTakesNoAnswers() throws {
        let fixture = try Fixture()
        let proxy = try handler(fixture)
        try fixture.request("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
        fixture.client.isWritable = false
        fixture.client.pipeline.fireChannelWritabilityChanged()
        try fixture.connector.answer(0, Self.ok)
        #expect(fixture.connector.opened.count == 1, "the second request waits while the first answer is not taken")
        #expect(!proxy.mayRead, "and nothing more is read")
        fixture.client.isWritable = true
        fixture.client.pipeline.fireChannelWritabilityChanged()
        #expect(fixture.connector.opened.count == 2)
        #expect(try fixture.connector.sent(1).hasPrefix("GET /2 HTTP/1.1\r\n"))
        try fixture.connector.answer(1, Self.ok)
        #expect(fixture.connector.opened.count == 3)
        try fixture.connector.answer(2, Self.ok)
        #expect(try fixture.received().components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        #expect(fixture.stats.traffic.outcomes == .init(proxied: 3))
        #expect(proxy.mayRead)
    }

    /// `timeouts.client_send` between requests: a client that took none of its answers,
    /// with pipelined requests held back behind them, is closed after the send timeout
    /// (counted as a `client_send` timeout), not kept until `timeouts.idle` (before, a
    /// stalled pipeliner held its connection for the idle timeout, 60 s by default).
    @Test func aClientThatTakesNoAnswersIsClosedAtTheSendTimeoutBetweenRequests() throws {
        let timeouts = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60), sendTimeout: .seconds(30))
        let fixture = try Fixture(timeouts: timeouts)
        try fixture.request("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        fixture.client.isWritable = false
        fixture.client.pipeline.fireChannelWritabilityChanged()
        try fixture.connector.answer(0, Self.ok)
        #expect(fixture.connector.opened.count == 1, "the second request waits")
        fixture.loop.advanceTime(by: .milliseconds(29_999))
        #expect(fixture.client.isActive)
        fixture.loop.advanceTime(by: .milliseconds(1))
        #expect(!fixture.client.isActive)
        #expect(fixture.stats.traffic.timeouts[ExchangeDeadlines.Expiry.clientSend.index] == 1)
        #expect(fixture.stats.traffic.outcomes == .init(proxied: 1))
    }

    // MARK: Edge hardening

    func handler(_ fixture: Fixture) throws -> ProxyHandler {
        try fixture.client.pipeline.syncOperations.handler(type: ProxyHandler.self)
    }

    /// Pipelined heads count by their real size and number: behind one unanswered
    /// request, reads stop at `limits.max_pipelined` heads or 64 KiB, whichever first
    /// (before, each head counted 64 bytes whatever its size).
    @Test func pipelinedHeadsStopReadsByCountAndSize() throws {
        let fixture = try Fixture { $0.limits.maxPipelined = 4 }
        try fixture.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        let proxy = try handler(fixture)
        #expect(proxy.mayRead)
        for index in 0..<3 { try fixture.request("GET /p\(index) HTTP/1.1\r\nHost: h\r\n\r\n") }
        #expect(proxy.mayRead, "3 small heads queued, 4 allowed")
        try fixture.request("GET /p3 HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(!proxy.mayRead, "4 heads queued: reads stop")

        let big = try Fixture { $0.limits.maxPipelined = 1000 }
        try big.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        let filler = String(repeating: "f", count: 8_000)
        for index in 0..<9 { try big.request("GET /p\(index) HTTP/1.1\r\nHost: h\r\nX-Filler: \(filler)\r\n\r\n") }
        #expect(!(try handler(big)).mayRead, "9 heads of 8 KB pass 64 KiB")
        #expect((try handler(big)).queuedBytes > 64_000)
    }

    /// With `limits.max_header_bytes` above the 64 KiB that bounds queued pipelined
    /// input, a head that large still arrives whole and is served (before, reads stopped
    /// at 64 KiB of it: a 150 KB head got 408 at `client_header`); past the limit it is
    /// refused as before.
    @Test func aHeadLargerThanThePipelineQueueStillArrivesUpToTheHeaderLimit() throws {
        let fixture = try Fixture { $0.limits.maxHeaderBytes = 262_144 }
        let proxy = try handler(fixture)
        let value = String(repeating: "v", count: 150_000)
        try fixture.request("GET /big HTTP/1.1\r\nHost: h\r\nX-Big: " + value.prefix(100_000))
        #expect(proxy.mayRead, "100 KB of a head allowed 256 KiB: read on")
        try fixture.request(value.dropFirst(100_000) + "\r\n\r\n")
        #expect(try fixture.connector.sent(0).hasPrefix("GET /big HTTP/1.1\r\n"))
        try fixture.connector.answer(0, Self.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))

        let over = try Fixture { $0.limits.maxHeaderBytes = 100_000 }
        try over.request("GET /big HTTP/1.1\r\nHost: h\r\nX-Big: " + value + "\r\n\r\n")
        #expect(try over.received().hasPrefix("HTTP/1.1 431 "))
        #expect(over.connector.opened.isEmpty)
    }

    /// `timeouts.upstream_send`: an upstream that stops taking a streamed request body
    /// gets a 504 after the timeout, counted against its health; the client is not
    /// blamed for the reads the gateway paused meanwhile.
    @Test func anUpstreamThatStopsTakingTheBodyIs504() throws {
        let fixture = try Fixture {
            $0.limits.requestBufferBytes = 0
            $0.timeouts.upstreamSend = .seconds(2)
            $0.timeouts.clientBody = .seconds(1)
        }
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc")
        let upstream = fixture.connector.opened[0].channel
        upstream.isWritable = false
        upstream.pipeline.fireChannelWritabilityChanged()
        fixture.loop.advanceTime(by: .milliseconds(1500))
        #expect(try fixture.received().isEmpty, "client_body does not run while the upstream holds the body back")
        fixture.loop.advanceTime(by: .milliseconds(600))
        let answer = try fixture.received()
        #expect(answer.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(fixture.stats.traffic.timeouts[ExchangeDeadlines.Expiry.upstreamSend.index] == 1)
        #expect(fixture.runtime.health.state(0).consecutiveFailures == 1)
    }

    /// `timeouts.request` caps the whole request, whatever moves: a body that trickles in
    /// (each byte inside `client_body`) is cut off at the cap with 408 — the client is
    /// the one behind, and no upstream was asked (the body is read whole before
    /// admission) — while a request sent whole and unanswered at the cap is 504. Until
    /// 2026-12-07 both were 504 `upstream_timeout`.
    @Test func theTotalRequestCapBlamesWhoeverIsBehind() throws {
        let fixture = try Fixture {
            $0.timeouts.request = .seconds(3)
            $0.timeouts.clientBody = .seconds(2)
            $0.retry.onTimeout = false
        }
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n")
        for _ in 0..<2 {
            fixture.loop.advanceTime(by: .milliseconds(1_400))
            try fixture.request("x")
        }
        #expect(try fixture.received().isEmpty, "each byte came within client_body")
        fixture.loop.advanceTime(by: .milliseconds(200))
        let trickled = try fixture.received()
        #expect(trickled.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(trickled)")
        #expect(trickled.contains("body_timeout"))
        #expect(fixture.connector.opened.isEmpty, "no upstream was asked")
        #expect(fixture.stats.traffic.timeouts[ExchangeDeadlines.Expiry.request.index] == 1)

        let unanswered = try Fixture {
            $0.timeouts.request = .seconds(3)
            $0.retry.onTimeout = false
        }
        try unanswered.request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        unanswered.loop.advanceTime(by: .seconds(3))
        #expect(try unanswered.received().hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(unanswered.stats.traffic.timeouts[ExchangeDeadlines.Expiry.request.index] == 1)
    }

    /// A request still queued for admission when `timeouts.request` runs out has waited in
    /// the queue, not for an upstream: 503 `queue_timeout` with `Retry-After`, counted as a
    /// shed, its queue place given back. Until 2026-12-07: 504 `upstream_timeout`. (The
    /// holder of the one slot started before a reload set the cap, so it is not cut.)
    @Test func aRequestStillQueuedAtTheTotalCapIsAQueueTimeout() throws {
        let fixture = try Fixture { config in
            for index in config.upstreams.indices { config.upstreams[index].maxConcurrency = 1 }
            config.admission.targetUtilization = 0.5  // S = 1
            config.admission.queueTimeout = .seconds(60)
        }
        try fixture.request("GET /hold HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(fixture.connector.opened.count == 1)
        var capped = fixture.runtime.config
        capped.timeouts.request = .seconds(1)
        let (settings, assignment) = try fixture.runtime.prepare(capped)
        fixture.runtime.install(settings, assignment, now: MonotonicTime(fixture.loop.now))

        let stats = LoopStats()
        let waiting = EmbeddedChannel(loop: fixture.loop)
        try waiting.pipeline.syncOperations.addHandler(
            ProxyHandler(runtime: fixture.runtime, pool: fixture.connector, timeouts: nil, stats: stats))
        _ = waiting.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 3))
        try waiting.writeInbound(ByteBuffer(string: "GET /q HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(fixture.runtime.gate.snapshot.queued == 1)
        fixture.loop.advanceTime(by: .seconds(1))
        var answer = ""
        while let buffer = try waiting.readOutbound(as: ByteBuffer.self) { answer += String(buffer: buffer) }
        #expect(answer.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(answer)")
        #expect(answer.contains("queue_timeout"))
        #expect(answer.lowercased().contains("retry-after: "))
        #expect(fixture.runtime.gate.snapshot.queued == 0)
        #expect(stats.traffic.timeouts[ExchangeDeadlines.Expiry.request.index] == 1)
        #expect(stats.traffic.shed[ShedReason.queueTimeout.index] == 1)
        #expect(fixture.connector.opened.count == 1, "no upstream was asked for it")
        #expect(try fixture.received().isEmpty, "the holder, started before the cap, runs on")
        _ = try? waiting.finish()
    }

    /// A body read whole before admission: the request takes its slot only once the
    /// body is complete, and `100 Continue` goes out at once.
    @Test func smallBodiesAreReadBeforeAdmission() throws {
        let fixture = try Fixture()
        try fixture.request("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\nabc")
        #expect(try fixture.received() == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(fixture.connector.opened.isEmpty)
        #expect(fixture.runtime.gate.snapshot.inFlight == 0, "no slot held while the body arrives")
        try fixture.request("def")
        #expect(fixture.connector.opened.count == 1)
        #expect(try fixture.connector.sent(0).hasSuffix("\r\n\r\nabcdef"))
        try fixture.connector.answer(0, Self.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    /// A client waiting for `100 Continue` before sending a body read whole before
    /// admission is refused at once, without the 100, when admission would refuse it
    /// now (here the global bucket is empty): the body is never sent. Until 2026-12-05
    /// the 100 went out and the whole body was read, then shed. With a token left, the
    /// 100 goes out and the request is admitted once the body is whole.
    @Test(arguments: [false, true]) func aRequestThatWouldBeShedGetsNoContinue(tokenLeft: Bool) throws {
        let fixture = try Fixture {
            $0.rateLimit.global.enabled = true
            $0.rateLimit.global.rate = 0.001
            $0.rateLimit.global.burst = tokenLeft ? 2 : 1
        }
        try fixture.request("GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
        try fixture.connector.answer(0, Self.ok)
        #expect(try fixture.received().hasPrefix("HTTP/1.1 200 OK\r\n"))
        try fixture.request("PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n")
        let answer = try fixture.received()
        if tokenLeft {
            #expect(answer == "HTTP/1.1 100 Continue\r\n\r\n")
            try fixture.request("abcdef")
            #expect(try fixture.connector.sent(fixture.connector.opened.count - 1).hasSuffix("\r\n\r\nabcdef"))
        } else {
            #expect(answer.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(answer)")
            #expect(answer.contains("rate_limited"))
            #expect(answer.lowercased().contains("connection: close"), "the body was not read: the connection ends")
            #expect(fixture.stats.traffic.shed[ShedReason.rateLimited.index] == 1)
        }
    }

    /// Property: no configuration that passes validation can crash the gateway. Random
    /// values — extremes, boundaries, out-of-range ones — for every numeric key; each
    /// configuration the loader accepts serves a mix of requests (proxied, with a body,
    /// shed by both buckets, timed out) without trapping. Seeded, so a failure repeats.
    @Test func noValidConfigurationCrashesTheDataPath() throws {
        var random = SplitMix(seed: 0x5EED)
        let integers = ["0", "1", "2", "-1", "3", "1000", "65535", "2147483647", "9223372036854775807", "99999999999999999999"]
        let reals = ["0", "1e-300", "0.001", "0.5", "1", "1.5", "100", "1e9", "1e300", "-1", "nan"]
        let durations = ["0s", "1ns", "1ms", "250ms", "1s", "30s", "1h", "168h", "169h", "1000000h", "-1s"]
        let intKeys = [
            "health_check.rise", "health_check.fall", "health_check.passive.consecutive_failures", "retry.min_concurrent",
            "rate_limit.global.burst", "rate_limit.per_client.burst", "rate_limit.per_client.max_clients",
            "limits.max_header_bytes", "limits.max_header_count", "limits.max_body_bytes", "limits.request_buffer_bytes", "limits.max_pipelined",
            "limits.max_connections", "limits.max_connections_per_client", "pool.max_idle_per_upstream", "pool.max_connections",
            "limits.request_spool_bytes",
        ]
        let realKeys = [
            "admission.target_utilization", "admission.shed_at.low", "admission.shed_at.normal", "retry.budget_percent",
            "rate_limit.global.rate", "rate_limit.per_client.rate", "health_check.passive.panic_threshold",
            "health_check.passive.max_ejection_percent",
        ]
        let durationKeys = [
            "admission.queue_timeout", "timeouts.connect", "timeouts.upstream_header", "timeouts.client_body",
            "timeouts.client_send", "timeouts.upstream_read", "timeouts.upstream_send", "timeouts.request",
            "timeouts.lingering_close", "pool.idle_timeout", "health_check.passive.base_ejection",
        ]
        var accepted = 0
        for _ in 0..<300 {
            var environment: [String: String] = ["FLUXGATE_RATE_LIMIT_PER_CLIENT_ENABLED": "true"]
            func pick(_ keys: [String], _ values: [String]) {
                for key in keys where random.next() % 10 == 0 {
                    environment["FLUXGATE_" + key.uppercased().replacingOccurrences(of: ".", with: "_")] =
                        values[Int(random.next() % UInt64(values.count))]
                }
            }
            pick(intKeys, integers)
            pick(realKeys, reals)
            pick(durationKeys, durations)
            let yaml = "demo: { enabled: false }\nupstreams:\n  - url: \"http://127.0.0.1:9\"\n  - url: \"http://127.0.0.1:10\"\n"
            guard let config = try? ConfigLoader.load(yaml: yaml, environment: environment) else { continue }
            accepted += 1
            let fixture = try Fixture { $0 = config }
            for request in [
                "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
                "GET /c HTTP/1.1\r\nHost: h\r\nX-API-Key: k\r\n\r\n",
                "POST /d HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n" + String(repeating: "d", count: 70_000),
                "POST /e HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n",
            ] {
                try fixture.request(request)
                for index in fixture.connector.opened.indices { try? fixture.connector.answer(index, Self.ok) }
                fixture.loop.advanceTime(by: .seconds(2))
                _ = try fixture.received()
            }
            for _ in 0..<50 { try fixture.request("GET /burst HTTP/1.1\r\nHost: h\r\n\r\n") }
            fixture.loop.advanceTime(by: .seconds(700_000))
            _ = try fixture.received()
        }
        #expect(accepted > 20, "the generator must produce valid configurations too (\(accepted))")
    }
}

/// The event loop's shared write buffers (``LoopScratch``): a buffer whose write is
/// still queued on one connection is never written into for another.
struct LoopScratchTests {
    /// Client connections on one event loop, sharing its ``LoopScratch``, in front of a
    /// scripted upstream; rate limits off unless `adjust` turns them on.
    struct SharedLoop {
        let loop = EmbeddedEventLoop()
        let runtime: GatewayRuntime
        let scratch: LoopScratch
        let connector: ProxyHandlerTests.ScriptedConnector

        init(timeouts: ClientConnectionTimeouts? = nil, _ adjust: (inout GatewayConfig) -> Void = { _ in }) throws {
            let config = try makeConfig(upstreams: ["http://127.0.0.1:9"]) { config in
                config.rateLimit.global.enabled = false
                config.rateLimit.perClient.enabled = false
                adjust(&config)
            }
            runtime = try GatewayRuntime(config: config)
            scratch = LoopScratch(eventLoop: loop)
            connector = ProxyHandlerTests.ScriptedConnector(loop: loop, live: runtime.live)
        }

        func client() throws -> EmbeddedChannel {
            let channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandler(ProxyHandler(runtime: runtime, pool: connector, timeouts: nil, scratch: scratch))
            _ = channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2))
            return channel
        }
    }

    @Test func aQueuedAnswerIsNeverOverwrittenByTheNextConnection() throws {
        let shared = try SharedLoop { config in
            config.rateLimit.global.enabled = true
            config.rateLimit.global.rate = 0.001
            config.rateLimit.global.burst = 1
        }
        let connector = shared.connector
        let first = try shared.client()
        let second = try shared.client()
        // The burst's one token goes to the first request (proxied); the rest are shed.
        try first.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"))
        try first.writeInbound(ByteBuffer(string: "GET /b HTTP/1.1\r\nHost: h\r\nX-Request-ID: first-shed\r\n\r\n"))
        try connector.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        // The first connection's shed answer sits unread in its outbound queue (a write
        // not yet on the wire) while the second connection is answered from the same scratch.
        try second.writeInbound(ByteBuffer(string: "GET /c HTTP/1.1\r\nHost: h\r\nX-Request-ID: second-shed-with-a-longer-id\r\n\r\n"))
        var firstText = ""
        while let buffer = try first.readOutbound(as: ByteBuffer.self) { firstText += String(buffer: buffer) }
        var secondText = ""
        while let buffer = try second.readOutbound(as: ByteBuffer.self) { secondText += String(buffer: buffer) }
        #expect(firstText.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(firstText.contains("HTTP/1.1 503 Service Unavailable\r\n") || firstText.contains("HTTP/1.1 429 "))
        #expect(firstText.contains("x-request-id: first-shed\r\n"))
        #expect(!firstText.contains("second-shed"))
        #expect(secondText.contains("x-request-id: second-shed-with-a-longer-id\r\n"))
        #expect(!secondText.contains("first-shed"))
    }
}

extension LoopScratchTests {
    /// Heads are parsed into the loop's one lent head; a head that arrives in parts is
    /// kept by its own connection meanwhile. Two connections whose heads arrive
    /// interleaved, in pieces cut mid-line and mid-field, each forward exactly their own.
    @Test func headsArrivingInPartsOnOneLoopDoNotMix() throws {
        let shared = try SharedLoop()
        let connector = shared.connector
        let first = try shared.client()
        let second = try shared.client()
        let a = "GET /first HTTP/1.1\r\nHost: a\r\nX-One: 1111\r\nX-Two: 2222\r\n\r\n"
        let b = "POST /second HTTP/1.1\r\nHost: b\r\nX-Other: zz\r\nContent-Length: 0\r\n\r\n"
        let cuts = [5, 14, 22, 31, 40]  // mid-line, mid-name, mid-value
        var pieces: [(EmbeddedChannel, String)] = []
        for (text, channel) in [(a, first), (b, second)] {
            var rest = Substring(text)
            for cut in cuts where rest.count > 0 {
                let taken = text.count - rest.count
                guard cut > taken else { continue }
                pieces.append((channel, String(rest.prefix(cut - taken))))
                rest = rest.dropFirst(cut - taken)
            }
            pieces.append((channel, String(rest)))
        }
        // Interleaved: a piece of one, then a piece of the other.
        let half = pieces.count / 2
        for index in 0..<half {
            try pieces[index].0.writeInbound(ByteBuffer(string: pieces[index].1))
            if half + index < pieces.count { try pieces[half + index].0.writeInbound(ByteBuffer(string: pieces[half + index].1)) }
        }
        for index in (2 * half)..<pieces.count { try pieces[index].0.writeInbound(ByteBuffer(string: pieces[index].1)) }
        #expect(connector.opened.count == 2)
        let sent = try (0..<2).map { try connector.sent($0) }
        let forFirst = try #require(sent.first { $0.hasPrefix("GET /first ") })
        let forSecond = try #require(sent.first { $0.hasPrefix("POST /second ") })
        #expect(forFirst.contains("X-One: 1111\r\nX-Two: 2222\r\n") && !forFirst.contains("X-Other"))
        #expect(forSecond.contains("X-Other: zz\r\n") && !forSecond.contains("X-One") && !forSecond.contains("X-Two"))
    }

    /// An ended exchange's upstream head is kept for the next request on the loop and
    /// its storage reused — but not while a write of it is still queued (copy-on-write:
    /// the next head then gets fresh storage and the queued bytes stay as they were).
    @Test func upstreamHeadsAreReusedButNeverWhileTheirWriteIsQueued() throws {
        let shared = try SharedLoop()
        let (scratch, connector) = (shared.scratch, shared.connector)
        let client = try shared.client()
        func outbound(_ index: Int) throws -> ByteBuffer {
            try #require(try connector.opened[index].channel.readOutbound(as: ByteBuffer.self))
        }

        try client.writeInbound(ByteBuffer(string: "GET /first-and-longer HTTP/1.1\r\nHost: h\r\nX-Long: aaaaaaaaaaaa\r\n\r\n"))
        // The first head stays unread in the upstream's outbound queue: a write not on the wire yet.
        try connector.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(scratch.spareUpstreamHeads == 1)
        try client.writeInbound(ByteBuffer(string: "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
        #expect(scratch.spareUpstreamHeads == 0)
        let first = String(buffer: try outbound(0))
        #expect(first.hasPrefix("GET /first-and-longer HTTP/1.1\r\n"))
        #expect(first.contains("X-Long: aaaaaaaaaaaa\r\n"))
        var second = try outbound(1)
        #expect(String(buffer: second).hasPrefix("GET /b HTTP/1.1\r\n"))
        #expect(!String(buffer: second).contains("X-Long"))
        let secondStorage = second.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        second = ByteBuffer()  // the write is done: nothing references the head but the exchange
        try connector.answer(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(scratch.spareUpstreamHeads == 1)

        try client.writeInbound(ByteBuffer(string: "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"))
        let third = try outbound(2)
        #expect(String(buffer: third).hasPrefix("GET /c HTTP/1.1\r\n"))
        #expect(!String(buffer: third).contains("GET /b"))
        #expect(third.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == secondStorage, "the spare's storage is reused")
    }
}

extension LoopScratchTests {
    /// RFC 9110 §6.6.1: the gateway's own answers carry `Date`, and so does a relayed
    /// response that had none; an upstream's own `Date` goes on alone. The loop formats
    /// the line once per second of its wall clock.
    @Test func answersAndRelayedResponsesCarryADate() throws {
        let shared = try SharedLoop { config in
            config.rateLimit.global.enabled = true
            config.rateLimit.global.rate = 0.001
            config.rateLimit.global.burst = 2
        }
        var wall: Int64 = 784_111_777
        shared.scratch.wallClock = { (wall, 0) }
        let connector = shared.connector
        let client = try shared.client()
        func output() throws -> String {
            var text = ""
            while let buffer = try client.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }
        func dates(_ text: String) -> [Substring] {
            text.split(separator: "\r\n").filter { $0.lowercased().hasPrefix("date:") }
        }
        try client.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"))
        try connector.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(dates(try output()) == ["date: Sun, 06 Nov 1994 08:49:37 GMT"])

        try client.writeInbound(ByteBuffer(string: "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"))
        try connector.answer(1, "HTTP/1.1 200 OK\r\nDATE: Mon, 07 Nov 1994 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok")
        #expect(dates(try output()) == ["DATE: Mon, 07 Nov 1994 00:00:00 GMT"])

        wall += 1
        shared.loop.advanceTime(by: .seconds(1))  // the wall clock is read again once its second is over
        try client.writeInbound(ByteBuffer(string: "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"))  // no token left: shed
        let shed = try output()
        #expect(shed.hasPrefix("HTTP/1.1 503 ") || shed.hasPrefix("HTTP/1.1 429 "))
        #expect(dates(shed) == ["date: Sun, 06 Nov 1994 08:49:38 GMT"])

        try client.writeInbound(ByteBuffer(string: "GET /d HTTP/1.1\r\nHost: h\r\nBad Field: x\r\n\r\n"))
        let refused = try output()
        #expect(refused.hasPrefix("HTTP/1.1 400 "))
        #expect(dates(refused) == ["date: Sun, 06 Nov 1994 08:49:38 GMT"])
    }
}

extension LoopScratchTests {
    /// The per-client rate limit counts an IPv6 client as its /64 (`limits.client_ipv6_prefix`):
    /// a client taking a fresh address for each request from its network meets the
    /// same bucket; with 128 each address has its own. Addresses come from a trusted
    /// proxy's `X-Forwarded-For` (loopback has one IPv6 address).
    @Test(arguments: [64, 128]) func anIPv6ClientIsRateLimitedAsItsNetwork(prefix: Int) throws {
        let shared = try SharedLoop { config in
            config.trustedProxies = [AddressRange.parse("127.0.0.1")!]
            config.rateLimit.perClient.enabled = true
            config.rateLimit.perClient.rate = 0.001
            config.rateLimit.perClient.burst = 1
            config.limits.clientIPv6Prefix = prefix
        }
        let client = try shared.client()
        var statuses: [String] = []
        // Back and forth between two networks on one connection: the connection keeps
        // the key of the last address it saw, and must not give it to another.
        let addresses = ["2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:3::a", "2001:db8:1:2::c", "2001:db8:1:3::b"]
        for (index, address) in addresses.enumerated() {
            let opened = shared.connector.opened.count
            try client.writeInbound(ByteBuffer(string: "GET /\(index) HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: \(address)\r\n\r\n"))
            if shared.connector.opened.count > opened {  // admitted: the upstream answers
                try shared.connector.answer(opened, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            }
            var text = ""
            while let buffer = try client.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            statuses.append(String(text.prefix(12)))
        }
        let expected = prefix == 64 ? ["HTTP/1.1 200", "HTTP/1.1 429", "HTTP/1.1 200", "HTTP/1.1 429", "HTTP/1.1 429"] : Array(repeating: "HTTP/1.1 200", count: 5)
        #expect(statuses == expected)
    }
}
