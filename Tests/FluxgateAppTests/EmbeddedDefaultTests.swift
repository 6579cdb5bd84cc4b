import FluxgateApp
import FluxgateCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The one-command product: no upstream configured, so three demo instances start in
/// process and the gateway balances over them.
@Suite(.timeLimit(.minutes(1)))
struct EmbeddedDefaultTests {
    @Test func thirtyRequestsReachTheThreeInstancesTenEach() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        // The embedded default, moved off the fixed ports so tests can run anywhere.
        let application = try await startOnFreePorts(group: group, logger: logger)
        let address = try #require(application.gateway.localAddress)

        var counts: [String: Int] = [:]
        for _ in 0..<30 {
            // A new connection each time, so requests land on both event loops.
            let response = try await HTTP.get("/health", from: address, group: group)
            #expect(response.status == .ok)
            #expect(response.body.contains(#""status":"healthy""#))
            counts[response.instance, default: 0] += 1
        }
        #expect(counts == ["a": 10, "b": 10, "c": 10])
        try await application.stop()
        try await group.shutdownGracefully()
    }

    @Test func echoThroughTheWholeProduct() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let application = try await startOnFreePorts(group: group, logger: Logger(label: "test"))
        let address = try #require(application.gateway.localAddress)
        let response = try await HTTP.post("/api/echo", body: #"{"items":[1,2,3]}"#, to: address, group: group)
        #expect(response.status == .ok)
        #expect(response.body == #"{"echo":{"items":[1,2,3]},"message":"Echo successful"}"#)
        try await application.stop()
        try await group.shutdownGracefully()
    }

    func startOnFreePorts(group: any EventLoopGroup, logger: Logger) async throws -> GatewayApplication {
        for attempt in 0..<20 {
            var config = try ConfigLoader.load(yaml: "listen: \"127.0.0.1:0\"")
            config.demo.basePort = 20_000 + Int.random(in: 0..<400) * 100 + attempt
            let application = try GatewayApplication(config: config, group: group, logger: logger)
            do {
                try await application.start()
                return application
            } catch {
                try? await application.stop()
            }
        }
        throw ChannelError.inappropriateOperationForState
    }
}

/// A one-request HTTP/1.1 client over NIOHTTP1.
enum HTTP {
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var instance: String
        var body: String
    }

    static func get(_ uri: String, from address: SocketAddress, group: any EventLoopGroup) async throws -> Response {
        try await request(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: ["host": "x", "connection": "close"]), body: nil, address: address, group: group)
    }

    static func post(_ uri: String, body: String, to address: SocketAddress, group: any EventLoopGroup) async throws -> Response {
        let head = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: uri,
            headers: ["host": "x", "connection": "close", "content-type": "application/json", "content-length": "\(body.utf8.count)"])
        return try await request(head, body: body, address: address, group: group)
    }

    private static func request(_ head: HTTPRequestHead, body: String?, address: SocketAddress, group: any EventLoopGroup) async throws -> Response {
        let promise = group.next().makePromise(of: Response.self)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Collector(promise: promise))
                }
            }
            .connect(to: address).get()
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let response = try await promise.futureResult.get()
        try? await channel.close()
        return response
    }

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<Response>
        var response = Response(status: .ok, instance: "", body: "")
        init(promise: EventLoopPromise<Response>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                response.status = head.status
                response.instance = head.headers.first(name: "x-upstream-instance") ?? "?"
            case .body(let buffer):
                response.body += String(buffer: buffer)
            case .end:
                promise.succeed(response)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.eof)
        }
    }
}
