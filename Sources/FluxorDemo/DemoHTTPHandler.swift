import Foundation
import NIOCore
import NIOHTTP1

/// Serves ``DemoRouter`` over HTTP/1.1: collects a request (body bounded by the
/// router's limit), answers with JSON and `X-Upstream-Instance`, after the service
/// time the overload model gives it when latency is configured.
final class DemoHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: DemoRouter
    private let options: DemoUpstreamServer.Configuration
    private let latency: LatencyModel?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    /// A request was refused before its body: nothing more on this connection is served.
    private var refused = false

    init(router: DemoRouter, options: DemoUpstreamServer.Configuration, latency: LatencyModel?) {
        self.router = router
        self.options = options
        self.latency = latency
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard !refused else { return }
            body.removeAll(keepingCapacity: true)
            bodyTooLarge = false
            if let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > router.maxBodyBytes {
                // Answered at once, as nginx does, instead of reading a body it will
                // refuse; the close lingers (LingeringCloseHandler) so the 413 arrives.
                refused = true
                var closing = head
                closing.headers.replaceOrAdd(name: "connection", value: "close")
                _ = router.state.requestStarted()
                write(.error(413, "body too large"), for: closing, context: context)
                router.state.requestFinished(status: 413)
                return
            }
            self.head = head
        case .body(var buffer):
            guard !refused else { return }
            if body.count + buffer.readableBytes > router.maxBodyBytes {
                bodyTooLarge = true
            } else {
                body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
            }
        case .end:
            guard !refused, let head else { return }
            self.head = nil
            serve(head, context: context)
        }
    }

    /// Unparseable input: NIOHTTP1's error handler has written a 400 with
    /// `Connection: close`, but nothing closed the connection — it stayed open, holding
    /// its descriptor, until the client left. Closing here lingers (LingeringCloseHandler).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func serve(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let state = router.state
        let inFlight = state.requestStarted()
        if options.maxInFlight > 0 && inFlight > options.maxInFlight {
            // Fluxor's backpressure, fixed: a valid JSON 503 with Retry-After.
            let response = DemoResponse.error(503, "overloaded", headers: [("retry-after", "1")])
            write(response, for: head, context: context)
            state.requestFinished(status: 503, rejected: true)
            return
        }
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        let response: DemoResponse
        if bodyTooLarge {
            response = .error(413, "body too large")
        } else {
            let loopback = context.channel.remoteAddress.map(Self.isLoopback) ?? false
            response = router.respond(
                to: .init(
                    method: head.method.rawValue, path: path, body: body,
                    authorization: head.headers.first(name: "authorization"), fromLoopback: loopback),
                unixTime: Int(Date().timeIntervalSince1970))
        }
        guard let latency, options.latency > .zero else {
            write(response, for: head, context: context)
            state.requestFinished(status: response.status)
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        latency.submit(work: options.serviceTime()) {
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.write(response, for: head, context: context)
                state.requestFinished(status: response.status)
            }
        }
    }

    static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4: address.ipAddress?.hasPrefix("127.") ?? false
        case .v6: address.ipAddress == "::1"
        default: false
        }
    }

    private func write(_ response: DemoResponse, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(4 + response.headers.count)
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.utf8.count))
        headers.add(name: "x-upstream-instance", value: router.instance)
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        // NIOHTTP1's decoder (llhttp) stops parsing HTTP after a request that asks to
        // upgrade, whatever the answer; the demo upgrades nothing, so such a connection
        // is answered and closed — kept open, the next request on it waited forever.
        let keepAlive = request.isKeepAlive && !request.headers.contains(name: "upgrade")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: request.version, status: .init(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}

@available(*, unavailable)
extension DemoHTTPHandler: Sendable {}
