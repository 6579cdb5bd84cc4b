import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

struct TestResponse: Sendable {
    var head: HTTPResponseHead
    var body: ByteBuffer
    var bodyHash: UInt64
    var bodyBytes: Int
    var bodyString: String { String(buffer: body) }
    var status: Int { Int(head.status.code) }
    func header(_ name: String) -> String? { head.headers.first(name: name) }
}

/// An HTTP/1.1 client on one keep-alive connection, built from NIOHTTP1's client
/// codec: requests may be pipelined; responses complete in order.
final class TestClient: Sendable {
    let channel: any Channel
    private let collector: NIOLoopBound<Collector>

    static func connect(to address: SocketAddress, group: any EventLoopGroup, autoRead: Bool = true) async throws -> TestClient {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.autoRead, value: autoRead)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Collector())
                }
            }
            .connect(to: address).get()
        let collector = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: Collector.self), eventLoop: channel.eventLoop)
        }.get()
        return TestClient(channel: channel, collector: collector)
    }

    private init(channel: any Channel, collector: NIOLoopBound<Collector>) {
        self.channel = channel
        self.collector = collector
    }

    /// Sends one request and returns a future for its response.
    func send(_ head: HTTPRequestHead, body: [ByteBuffer] = []) -> EventLoopFuture<TestResponse> {
        let collector = self.collector
        let channel = self.channel
        return channel.eventLoop.flatSubmit {
            let promise = channel.eventLoop.makePromise(of: TestResponse.self)
            guard channel.isActive else {
                // Closed already (e.g. by an idle timeout): fail now rather than wait forever.
                promise.fail(ChannelError.ioOnClosedChannel)
                return promise.futureResult
            }
            collector.value.pending.append(promise)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            for part in body { channel.write(HTTPClientRequestPart.body(.byteBuffer(part)), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            return promise.futureResult
        }
    }

    func get(_ uri: String, headers: [(String, String)] = []) async throws -> TestResponse {
        var all = HTTPHeaders([("host", "test.local")])
        for (name, value) in headers { all.add(name: name, value: value) }
        return try await send(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: all)).get()
    }

    func close() async throws {
        try? await channel.close()
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        var pending: [EventLoopPromise<TestResponse>] = []
        var head: HTTPResponseHead?
        var body = ByteBuffer()
        var hash = FNV1a()
        var bytes = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body.clear()
                hash = FNV1a()
                bytes = 0
            case .body(var buffer):
                bytes += buffer.readableBytes
                buffer.withUnsafeReadableBytes { hash.add($0) }
                if body.readableBytes < 1_048_576 { body.writeBuffer(&buffer) }
            case .end:
                guard let head, !pending.isEmpty else { return }
                pending.removeFirst().succeed(TestResponse(head: head, body: body, bodyHash: hash.value, bodyBytes: bytes))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            let waiting = pending
            pending = []
            waiting.forEach { $0.fail(ChannelError.eof) }
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            let waiting = pending
            pending = []
            waiting.forEach { $0.fail(error) }
            context.close(promise: nil)
        }
    }
}
