import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), through
/// NIOHTTP1's client codec: the real-client helper shared by the test targets.
public enum OneShot {
    public struct Response: Sendable {
        public var head: HTTPResponseHead
        public var body: String
        public var status: HTTPResponseStatus { head.status }
        public var instance: String { head.headers.first(name: "x-upstream-instance") ?? "?" }
    }

    public static func request(_ method: String, _ uri: String, body: String? = nil, to address: SocketAddress, group: any EventLoopGroup)
        async throws -> Response
    {
        let promise = group.next().makePromise(of: Response.self)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Collector(promise: promise))
                }
            }
            .connect(to: address).get()
        var headers = HTTPHeaders([("host", "t"), ("connection", "close")])
        if let body { headers.add(name: "content-length", value: "\(body.utf8.count)") }
        channel.write(HTTPClientRequestPart.head(.init(version: .http1_1, method: .init(rawValue: method), uri: uri, headers: headers)), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let response = try await promise.futureResult.get()
        try? await channel.close()
        return response
    }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<Response>
        var head: HTTPResponseHead?
        var body = ""
        init(promise: EventLoopPromise<Response>) { self.promise = promise }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body(let buffer): body += String(buffer: buffer)
            case .end: if let head { promise.succeed(Response(head: head, body: body)) }
            }
        }
        func channelInactive(context: ChannelHandlerContext) { promise.fail(ChannelError.eof) }
    }
}
