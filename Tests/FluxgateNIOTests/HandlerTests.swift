import FluxgateCore
import FluxgateNIOSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

@testable import FluxgateNIO

/// Handlers in `EmbeddedChannel`: timeouts driven by `advanceTime`, no sockets, no sleeps.
struct HandlerTests {
    func timeoutChannel(header: Duration = .seconds(10), idle: Duration = .seconds(60), send: Duration = .zero) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let timers = LoopTimers(eventLoop: channel.embeddedEventLoop)
        try channel.pipeline.syncOperations.addHandler(
            ClientTimeoutHandler(
                headerTimeout: header, idleTimeout: idle, sendTimeout: send, rejection: { GatewayResponses().requestTimeout(date: ByteBuffer()) },
                timers: timers))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func timeoutHandler(_ channel: EmbeddedChannel) throws -> (ClientTimeoutHandler, ChannelHandlerContext) {
        let handler = try channel.pipeline.syncOperations.handler(type: ClientTimeoutHandler.self)
        return (handler, try channel.pipeline.syncOperations.context(handler: handler))
    }

    /// Holds every write without completing it — what NIOSSL does with bytes written
    /// before a TLS handshake that never finishes.
    final class WriteSwallower: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        private var held: [EventLoopPromise<Void>?] = []
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) { held.append(promise) }
        func flush(context: ChannelHandlerContext) {}
        func handlerRemoved(context: ChannelHandlerContext) {
            held.forEach { $0?.fail(ChannelError.ioOnClosedChannel) }
            held = []
        }
    }

    /// A 408 that can never be written (a TLS client that stopped mid-handshake) does
    /// not keep the connection: it closes at the linger timeout (5 s unless set).
    @Test func aSlowHeadWhose408CannotBeWrittenIsClosedAnyway() throws {
        let channel = EmbeddedChannel()
        let timers = LoopTimers(eventLoop: channel.embeddedEventLoop)
        try channel.pipeline.syncOperations.addHandler(WriteSwallower())
        try channel.pipeline.syncOperations.addHandler(
            ClientTimeoutHandler(
                headerTimeout: .seconds(10), idleTimeout: .seconds(60), sendTimeout: .zero, rejection: { GatewayResponses().requestTimeout(date: ByteBuffer()) },
                timers: timers))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))  // the 408, held forever
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(4_999))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    /// A connection refused at the cap, in a pipeline of its own.
    func refusedChannel(linger: TimeAmount?) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            RefuseConnectionHandler(answer: GatewayResponses().tooManyConnections(date: ByteBuffer()), lingerTimeout: linger))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    /// The refusal at the cap answers the client's request, not its connect: the 503
    /// waits for the first bytes, so that an HTTP client reads it as the answer to its
    /// request (Go's `net/http` drops a response that comes before the request as
    /// "unsolicited" and fails the request instead); what follows is read and discarded.
    @Test func aRefusalAtTheCapWaitsForTheRequest() throws {
        let channel = try refusedChannel(linger: .seconds(5))
        #expect(try written(channel).isEmpty, "the 503 went out before the request")
        try channel.writeInbound(ByteBuffer(string: "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n"))
        let answer = try written(channel)
        #expect(answer.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n") && answer.contains("too_many_connections"))
        try channel.writeInbound(ByteBuffer(string: "the body"))
        #expect(try written(channel).isEmpty, "answered twice")
        _ = try? channel.finish()
    }

    /// A client that sends nothing gets the 503 at the linger timeout and a plain close;
    /// one that closes its side first gets it at once.
    @Test func aRefusalAtTheCapDoesNotWaitForASilentClientForEver() throws {
        let silent = try refusedChannel(linger: .seconds(5))
        silent.embeddedEventLoop.advanceTime(by: .milliseconds(4_999))
        #expect(try written(silent).isEmpty)
        silent.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try written(silent).hasPrefix("HTTP/1.1 503 "))
        #expect(!silent.isActive)

        let leaving = try refusedChannel(linger: .seconds(5))
        leaving.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try written(leaving).hasPrefix("HTTP/1.1 503 "))
        #expect(!leaving.isActive)
    }

    /// Without a linger (a flood beyond the refusals that may linger at once) the 503 is
    /// written at accept and the connection closed: holding it is what the cap protects.
    @Test func aRefusalWithoutALingerAnswersAtOnce() throws {
        let channel = try refusedChannel(linger: nil)
        #expect(try written(channel).hasPrefix("HTTP/1.1 503 "))
        #expect(!channel.isActive)
    }

    @Test func silentNewConnectionGets408AtTheHeaderDeadline() throws {
        let channel = try timeoutChannel(header: .seconds(10))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(9_999))
        #expect(channel.isActive)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        let answer = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: answer).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(String(buffer: answer).contains("connection: close"))
        #expect(!channel.isActive)
    }

    @Test func idleKeepAliveClosesQuietlyAndBusyConnectionsDoNot() throws {
        let channel = try timeoutChannel(header: .seconds(10), idle: .seconds(60))
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        _ = try channel.readInbound(as: ByteBuffer.self)
        let (handler, _) = try timeoutHandler(channel)
        handler.requestHeadReceived()
        // Serving takes longer than both timeouts: neither applies while busy.
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(channel.isActive)
        handler.responseCompleted(now: MonotonicTime(channel.embeddedEventLoop.now))
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    /// The admin listener's send timeout (``AdminServer/Limits/sendTimeout``): a client
    /// that takes none of its answers is closed after it, while an answer is held for it
    /// (a pipelined `GET /metrics` behind unread ones) as well as between requests; one
    /// that takes them again has its idle clock start afresh.
    @Test func aClientThatTakesNoAnswersIsClosedAtTheSendTimeout() throws {
        let channel = try timeoutChannel(header: .seconds(10), idle: .seconds(60), send: .seconds(30))
        let (handler, _) = try timeoutHandler(channel)
        handler.requestHeadReceived()
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(29_999))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)

        let reading = try timeoutChannel(header: .seconds(10), idle: .seconds(60), send: .seconds(30))
        let (kept, _) = try timeoutHandler(reading)
        kept.requestHeadReceived()
        kept.responseCompleted(now: MonotonicTime(reading.embeddedEventLoop.now))
        reading.isWritable = false
        reading.pipeline.fireChannelWritabilityChanged()
        reading.embeddedEventLoop.advanceTime(by: .seconds(20))
        reading.isWritable = true
        reading.pipeline.fireChannelWritabilityChanged()
        reading.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(reading.isActive, "idle for 59 s since it took its answers")
        reading.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!reading.isActive)
    }

    @Test func bytesAfterIdleStartTheHeaderClock() throws {
        let channel = try timeoutChannel(header: .seconds(5), idle: .seconds(60))
        let (handler, _) = try timeoutHandler(channel)
        handler.requestHeadReceived()
        handler.responseCompleted(now: MonotonicTime(channel.embeddedEventLoop.now))
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        try channel.writeInbound(ByteBuffer(string: "GET / HT"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        let answer = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: answer).hasPrefix("HTTP/1.1 408"))
        #expect(!channel.isActive)
    }

    /// The client side of the data path with nothing upstream: enough to see the
    /// gateway's own answers.
    func proxyChannel(maxHeaderBytes: Int = 16_384) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.limits.maxHeaderBytes = maxHeaderBytes
        let runtime = try GatewayRuntime(config: config)
        let pool = UpstreamPool(eventLoop: channel.embeddedEventLoop, targets: runtime.settings.targets, config: config, live: runtime.live)
        try channel.pipeline.syncOperations.addHandler(ProxyHandler(runtime: runtime, pool: pool, timeouts: nil))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func allOutbound(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test func parseErrorsAreAnsweredWith400AndClose() throws {
        let channel = try proxyChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nBad Header\r\n\r\n"))
        let text = try allOutbound(channel)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(text.contains("connection: close"))
        // The parser's reason follows the message, and the length counts it.
        let body = #"{"error":"bad_request","message":"the request could not be parsed as HTTP/1.1: header name is not a token followed by a colon"}"#
        #expect(text.hasSuffix("\r\n\r\n" + body), "\(text)")
        #expect(text.contains("\r\ncontent-length: \(body.utf8.count)\r\n"))
        #expect(!channel.isActive)
    }

    @Test func aHostThatIsNotHostAndPortIsAnsweredWith400NamingIt() throws {
        let channel = try proxyChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a..b\r\n\r\n"))
        let text = try allOutbound(channel)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(text.hasSuffix(#""message":"the request could not be parsed as HTTP/1.1: Host has an empty label"}"#), "\(text)")
        #expect(!channel.isActive)
    }

    @Test func headerOverflowIsAnsweredWith431() throws {
        let channel = try proxyChannel(maxHeaderBytes: 1024)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nX-A: \(String(repeating: "a", count: 1100))\r\n\r\n"))
        #expect(try allOutbound(channel).hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        #expect(!channel.isActive)
    }

    /// A request line longer than the head limit is answered 414 (RFC 9110 §15.5.15),
    /// as nginx answers one longer than its large header buffer.
    @Test func anOverlongRequestLineIsAnsweredWith414() throws {
        let channel = try proxyChannel(maxHeaderBytes: 1024)
        try channel.writeInbound(ByteBuffer(string: "GET /\(String(repeating: "p", count: 1100)) HTTP/1.1\r\nHost: h\r\n\r\n"))
        let text = try allOutbound(channel)
        #expect(text.hasPrefix("HTTP/1.1 414 URI Too Long\r\n"))
        #expect(text.hasSuffix(#"{"error":"uri_too_long","message":"the request line exceeds limits.max_header_bytes"}"#))
        #expect(!channel.isActive)
    }

    /// A method token the gateway does not forward: 501 naming the methods it does,
    /// counted among the refusals before a head (before, a 400 "unknown method").
    @Test func anUnknownMethodIsAnswered501() throws {
        let channel = try proxyChannel()
        try channel.writeInbound(ByteBuffer(string: "BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n"))
        let text = try allOutbound(channel)
        #expect(text.hasPrefix("HTTP/1.1 501 Not Implemented\r\n"), "\(text)")
        #expect(text.contains(#""error":"method_not_implemented","message":"the gateway forwards GET, HEAD"#))
        #expect(!channel.isActive)
    }

    /// `HTTP/2.0` on this HTTP/1.1 port: 505 naming the problem, as nginx answers it
    /// (before, a 400 "could not be parsed").
    @Test func aLaterMajorVersionIsAnswered505() throws {
        let channel = try proxyChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/2.0\r\nHost: h\r\n\r\n"))
        let text = try allOutbound(channel)
        #expect(text.hasPrefix("HTTP/1.1 505 HTTP Version Not Supported\r\n"), "\(text)")
        #expect(text.contains(#""error":"http_version_not_supported""#))
        #expect(!channel.isActive)
    }

    @Test func declaredBodyOverTheLimitIsAnswered413BeforeAnyUpstreamWork() throws {
        let channel = try proxyChannel()
        try channel.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\nX-Request-ID: r-1\r\n\r\n"))
        let text = try allOutbound(channel)
        #expect(text.hasPrefix("HTTP/1.1 413 Payload Too Large\r\n"))
        #expect(text.contains("x-request-id: r-1\r\n"))
        #expect(text.contains(#""error":"body_too_large""#))
    }

    /// Out of descriptors at accept: the listener stops reading (autoRead off, which
    /// unregisters it — a delayed read alone left NIO spinning at 100 % of a core on
    /// the level-triggered accept readiness) and resumes by itself after the pause.
    @Test func acceptPausesOnEMFILEAndResumes() throws {
        // EmbeddedChannel ignores `autoRead`, so the handler's own state is checked here;
        // the effect on a real listener is in docs/results/emfile-2026-11-30/.
        let loop = EmbeddedEventLoop()
        let handler = AcceptPauseHandler(pause: .milliseconds(250))
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        #expect(!handler.paused)
        channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        #expect(handler.paused)
        channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        loop.advanceTime(by: .milliseconds(200))
        #expect(handler.paused, "a second error while paused does not restart or shorten the pause")
        loop.advanceTime(by: .milliseconds(60))
        #expect(!handler.paused)
        #expect(throws: Never.self) { try channel.throwIfErrorCaught() }
        // Other errors are not this handler's business.
        channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNABORTED, reason: "accept"))
        #expect(!handler.paused)
        #expect(throws: IOError.self) { try channel.throwIfErrorCaught() }
    }
}


/// The event loop's shared timer for client connection timeouts.
struct LoopTimersTests {
    func handler(_ loop: EmbeddedEventLoop, _ timers: LoopTimers, idle: Duration) throws -> (EmbeddedChannel, ClientTimeoutHandler) {
        let handler = ClientTimeoutHandler(
            headerTimeout: .seconds(10), idleTimeout: idle, sendTimeout: .zero, rejection: { GatewayResponses().requestTimeout(date: ByteBuffer()) }, timers: timers)
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, handler)
    }

    /// Many connections, one NIO task: each closes at its own deadline.
    @Test func connectionsOnOneLoopTimeOutEachAtItsOwnDeadline() throws {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers(eventLoop: loop)
        var channels: [EmbeddedChannel] = []
        for _ in 0..<3 {
            channels.append(try handler(loop, timers, idle: .seconds(60)).0)
            loop.advanceTime(by: .seconds(1))  // opened at 0, 1 and 2 s: 408 due at 10, 11 and 12 s
        }
        #expect(timers.pending == 3)
        loop.advanceTime(by: .milliseconds(6_999))  // 9.999 s
        func active() -> [Bool] { channels.map { $0.isActive } }
        #expect(active() == [true, true, true])
        loop.advanceTime(by: .milliseconds(1))
        #expect(active() == [false, true, true])
        loop.advanceTime(by: .seconds(1))
        #expect(active() == [false, false, true])
        loop.advanceTime(by: .seconds(1))
        #expect(active() == [false, false, false])
        #expect(timers.pending == 0)
    }

    /// A closed connection's entry stays until its deadline, holds nothing alive and
    /// fires nothing; the connection's handler is released at the close.
    @Test func aClosedConnectionLeavesAStaleEntryThatHoldsNothing() throws {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers(eventLoop: loop)
        weak var released: ClientTimeoutHandler?
        do {
            let (channel, handler) = try handler(loop, timers, idle: .seconds(60))
            released = handler
            // (Not `finish()`: it cancels every task on the loop, the shared timer's too.)
            try channel.close().wait()
            loop.run()
        }
        #expect(released == nil)
        #expect(timers.registered == 0)
        #expect(timers.pending == 1)
        loop.advanceTime(by: .seconds(10))
        #expect(timers.pending == 0)
    }

    /// A later deadline does not add an entry: the pending one fires, finds nothing
    /// due and re-arms for it (the stride keeps new deadlines from being earlier).
    @Test func aLaterDeadlineReArmsFromThePendingEntry() throws {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers(eventLoop: loop)
        let (channel, handler) = try handler(loop, timers, idle: .seconds(4))  // stride 4 s: entry at 4 s
        handler.requestHeadReceived()
        loop.advanceTime(by: .seconds(1))
        handler.responseCompleted(now: MonotonicTime(loop.now))  // idle until 5 s
        #expect(timers.pending == 1)
        loop.advanceTime(by: .seconds(3))  // 4 s: nothing due; re-armed for 5 s
        #expect(channel.isActive)
        #expect(timers.pending == 1)
        loop.advanceTime(by: .milliseconds(999))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(1))  // 5 s: idle for 4 s
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)  // an idle close says nothing
    }
}

extension LoopTimersTests {
    /// A closed connection's slot goes to the next connection; the entry the first one
    /// left behind does not fire into the second (its generation is gone).
    @Test func aReusedSlotIgnoresItsFormerOwnersEntry() throws {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers(eventLoop: loop)
        let (first, _) = try handler(loop, timers, idle: .seconds(60))  // entry at 10 s
        try first.close().wait()
        loop.run()
        #expect(timers.registered == 0)
        loop.advanceTime(by: .seconds(5))
        let (second, _) = try handler(loop, timers, idle: .seconds(60))  // same slot, entry at 15 s
        #expect(timers.registered == 1)
        #expect(timers.pending == 2)
        loop.advanceTime(by: .seconds(5))  // 10 s: the first connection's entry fires into nothing
        #expect(second.isActive)
        #expect(timers.pending == 1)
        loop.advanceTime(by: .seconds(5))  // 15 s: the second one's 408
        #expect(!second.isActive)
    }
}

extension LoopTimersTests {
    /// Under churn the abandoned entries of closed connections are dropped once they
    /// are more than half of the heap: they stay bounded by the live connections, not
    /// by the connection rate × the timeout.
    @Test func abandonedEntriesAreDroppedInBulk() throws {
        let loop = EmbeddedEventLoop()
        let timers = LoopTimers(eventLoop: loop)
        let (live, _) = try handler(loop, timers, idle: .seconds(60))
        for _ in 0..<3_000 {
            let (channel, _) = try handler(loop, timers, idle: .seconds(60))
            try channel.close().wait()
        }
        loop.run()
        // 3 000 closed: rebuilt whenever more than 1 024 abandoned made up over half.
        #expect(timers.pending <= 1 + 1_025)
        #expect(timers.pending >= 1)
        loop.advanceTime(by: .seconds(10))  // the live one's header deadline still fires
        #expect(!live.isActive)
        #expect(timers.pending == 0)
    }
}
