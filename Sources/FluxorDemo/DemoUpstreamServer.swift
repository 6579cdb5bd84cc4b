import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// One demo upstream instance (the Fluxor API) on a port of its own.
///
/// The embedded default runs three of these in the gateway's process;
/// `fluxgate demo-upstream` runs one on its own. Both go through this type.
public final class DemoUpstreamServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port: Int
        public var instance: String
        /// Concurrent requests the instance considers full (readiness at 90 %).
        public var capacity = 5000
        public var maxBodyBytes = 1_048_576

        public init(port: Int, instance: String) {
            self.port = port
            self.instance = instance
        }
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channel = Mutex<(any Channel)?>(nil)

    public init(configuration: Configuration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    public var localAddress: SocketAddress? { channel.withLock { $0?.localAddress } }

    @discardableResult
    public func start() async throws -> SocketAddress {
        let router = DemoRouter(instance: configuration.instance, maxBodyBytes: configuration.maxBodyBytes)
        let stats = DemoStats(capacity: configuration.capacity)
        let bound = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(DemoHTTPHandler(router: router, stats: stats))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        channel.withLock { $0 = bound }
        logger.info(
            "demo upstream listening",
            metadata: ["instance": "\(configuration.instance)", "address": "\(bound.localAddress.map { "\($0)" } ?? "?")"])
        return bound.localAddress!
    }

    public func run() async throws {
        if localAddress == nil { try await start() }
        try? await gracefulShutdown()
        try await stop()
    }

    public func stop() async throws {
        let bound = channel.withLock { current in
            defer { current = nil }
            return current
        }
        try? await bound?.close()
    }
}
