import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// Serves ``DemoRouter`` over HTTP/1.1: collects a request (body bounded by the
/// router's limit), answers with JSON and `X-Upstream-Instance`.
final class DemoHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: DemoRouter
    private let stats: DemoStats
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false

    init(router: DemoRouter, stats: DemoStats) {
        self.router = router
        self.stats = stats
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll(keepingCapacity: true)
            bodyTooLarge = false
            stats.requestStarted()
        case .body(var buffer):
            if body.count + buffer.readableBytes > router.maxBodyBytes {
                bodyTooLarge = true
            } else {
                body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
            let response: DemoResponse
            if bodyTooLarge {
                response = DemoResponse(status: 413, body: #"{"error":"body too large"}"#)
            } else {
                response = router.respond(
                    to: .init(method: head.method.rawValue, path: path, body: body),
                    unixTime: Int(Date().timeIntervalSince1970), load: stats.load)
            }
            write(response, for: head, context: context)
            stats.requestFinished()
        }
    }

    private func write(_ response: DemoResponse, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(4 + response.headers.count)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(response.body.utf8.count))
        headers.add(name: "x-upstream-instance", value: router.instance)
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let keepAlive = request.isKeepAlive
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

/// Counters shared by all connections of one demo instance.
final class DemoStats: Sendable {
    private let inFlight = Atomic<Int>(0)
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    func requestStarted() { inFlight.wrappingAdd(1, ordering: .relaxed) }
    func requestFinished() { inFlight.wrappingSubtract(1, ordering: .relaxed) }
    var load: DemoRouter.Load { .init(inFlight: inFlight.load(ordering: .relaxed), capacity: capacity) }
}
