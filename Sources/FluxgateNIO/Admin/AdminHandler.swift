import FluxgateCore
import NIOCore
import NIOHTTP1

/// One admin connection: requests answered in order (NIOHTTP1's server pipeline
/// handler holds pipelined ones back, and stops reading, until each response ends).
/// A request whose turn comes while the client has not taken the earlier answers (the
/// channel past its high watermark) waits for it to take them: a client pipelining
/// `GET /metrics` without reading took the gateway to 234 MB from one connection.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: AdminServer
    private let timeouts: ClientTimeoutHandler
    private let maxBodyBytes: Int
    private var head: HTTPRequestHead?
    /// The body bytes of the current request so far (read and thrown away).
    private var bodyBytes = 0
    /// A 413 was written: the connection is closing, nothing more is answered.
    private var refused = false
    /// A complete request held until the client takes the answers before it.
    private var waiting: HTTPRequestHead?

    /// The connection cap's bookkeeping (``IdleEvictingConnectionCap``): an answer is
    /// being made (the connection is not closed to make room), and it is written.
    private let answering: () -> Void
    private let answered: () -> Void

    init(
        server: AdminServer, timeouts: ClientTimeoutHandler, maxBodyBytes: Int,
        answering: @escaping () -> Void = {}, answered: @escaping () -> Void = {}
    ) {
        self.server = server
        self.timeouts = timeouts
        self.maxBodyBytes = maxBodyBytes
        self.answering = answering
        self.answered = answered
    }

    /// The header timeout runs until the request's end, not its head's: no endpoint takes
    /// a body, so one is read and thrown away only while the whole request is inside the
    /// timeout and the size. Until 2026-12-07 the timeout stopped at the head, so a client
    /// that declared `Content-Length: 1000000000000` and sent a byte every 5 s held its
    /// connection for ever (found by trying it) — 64 of them, the cap, would have held
    /// every admin connection, `/healthz` and Prometheus's scrapes included.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            bodyBytes = 0
            if let declared = head.headers.first(name: "content-length").flatMap({ Int($0) }), declared > maxBodyBytes {
                refuseBody(head, context: context)
            }
        case .body(let part):
            bodyBytes += part.readableBytes
            if bodyBytes > maxBodyBytes, let head { refuseBody(head, context: context) }
        case .end:
            guard let head else { return }
            self.head = nil
            timeouts.requestHeadReceived()
            guard context.channel.isWritable else {
                waiting = head
                return
            }
            answer(head, context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let head = waiting.take() { answer(head, context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Unparseable input: NIOHTTP1's error handler has written a 400 with
    /// `Connection: close`, but nothing closed the connection — until 2026-12-06 it stayed
    /// open until the header timeout, which then wrote a 408 after that 400 (found by
    /// sending a TLS hello to the port). The close lingers (``LingeringCloseHandler``).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        answering()
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts.first ?? "")
        let query = parts.count > 1 ? parts[1] : nil
        let promise = context.eventLoop.makePromise(of: AdminServer.Response.self)
        let server = self.server
        promise.completeWithTask { await server.respond(method: head.method, path: path, query: query) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenSuccess { response in
            let (handler, context) = bound.value
            handler.write(response, head: head, context: context)
        }
    }

    /// 413 and close (lingering: the rest of the body is read and dropped for a while,
    /// so the answer is not lost to a reset).
    private func refuseBody(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        refused = true
        let response = AdminServer.Response.text(
            .payloadTooLarge, "admin endpoints take no request body (at most \(maxBodyBytes) bytes are read and ignored)\n")
        write(response, head: head, close: true, context: context)
    }

    private func write(_ response: AdminServer.Response, head: HTTPRequestHead, close: Bool = false, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: "\(response.body.count)")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Date", value: AdminServer.date())
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let keepAlive = head.isKeepAlive && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keepAlive {
            answered()
            timeouts.responseCompleted(now: MonotonicTime(context.eventLoop.now))
        } else {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
