import FluxgateCore
import FluxgateNIOSupport
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// One demo upstream instance (the Fluxor API) on a port of its own.
///
/// The embedded default runs several of these in the gateway's process;
/// `fluxgate demo-upstream` runs one on its own. Both go through this type and the
/// same ``Configuration``.
public final class DemoUpstreamServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        public var port: Int
        public var instance: String
        /// Requests served concurrently at full speed; beyond it they share the
        /// instance (processor sharing). Readiness fails at 90 % of it. Default 5000.
        public var capacity = 5000
        /// Mean service time per request; zero answers at once. Default 0.
        public var latency: Duration = .zero
        /// Service time varies uniformly within ± this. Default 0.
        public var jitter: Duration = .zero
        /// Refuse with 503 + Retry-After beyond this many in flight; 0 never refuses.
        public var maxInFlight = 0
        /// Start with the health check failing.
        public var failHealth = false
        /// HS256 secret for login tokens. The default is public and insecure: demo only.
        public var jwtSecret = DemoUpstreamServer.insecureDefaultSecret
        public var maxBodyBytes = 1_048_576

        public init(port: Int, instance: String) {
            self.port = port
            self.instance = instance
        }

        /// The `demo:` section of the gateway config, for one instance.
        public init(_ demo: DemoConfig, port: Int, instance: String) {
            self.init(port: port, instance: instance)
            capacity = demo.capacity
            latency = demo.latency
            jitter = demo.jitter
            maxInFlight = demo.maxInFlight
            failHealth = demo.failHealth
            jwtSecret = demo.jwtSecret
        }

        /// One request's service demand: `latency` ± uniform `jitter`.
        func serviceTime() -> Duration {
            guard jitter > .zero else { return latency }
            let spread = jitter.nanosecondsClamped
            let offset = Int64.random(in: -spread...spread)
            return .nanoseconds(max(0, latency.nanosecondsClamped + offset))
        }
    }

    /// Flagged in the docs and in a warning at start: never use it outside a demo.
    public static let insecureDefaultSecret = DemoConfig().jwtSecret

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channel = Mutex<(any Channel)?>(nil)
    public let state: DemoState

    public init(configuration: Configuration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.state = DemoState(instance: configuration.instance, capacity: configuration.capacity, failHealth: configuration.failHealth)
    }

    public var localAddress: SocketAddress? { channel.withLock { $0?.localAddress } }

    /// `host:port` it listens on, for messages.
    public var endpoint: String { "\(configuration.host):\(configuration.port)" }

    @discardableResult
    public func start() async throws -> SocketAddress {
        let router = DemoRouter(state: state, jwtSecret: configuration.jwtSecret, maxBodyBytes: configuration.maxBodyBytes)
        let options = configuration
        let latency = configuration.latency > .zero ? LatencyModel(capacity: configuration.capacity, loop: group.next()) : nil
        let bound = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Out of descriptors, stop accepting for a moment rather than spin (the
            // embedded demo shares the gateway's event loops): 10 ms, not the data
            // listener's 250 — an embedded demo's accepts are the gateway's upstream
            // connects, work already admitted, and should get a freed descriptor before
            // a new client connection does. (With 250 ms the k6 stress test at the
            // descriptor limit saw requests wait out their timeouts in the demo's queue.)
            .pausingAcceptsWhenOutOfDescriptors(for: .milliseconds(10))
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Error answers (400, 413) close with a lingering close, so an unread
                    // request does not turn the answer into a TCP reset.
                    try channel.pipeline.syncOperations.addHandler(LingeringCloseHandler(timeout: .seconds(5), closesLinger: true))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(DemoHTTPHandler(router: router, options: options, latency: latency))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        channel.withLock { $0 = bound }
        if configuration.jwtSecret == Self.insecureDefaultSecret {
            logger.debug("demo upstream signs tokens with the public default secret; set demo.jwt_secret for anything but a demo")
        }
        logger.info(
            "demo upstream listening",
            metadata: [
                "instance": "\(configuration.instance)", "address": "\(bound.localAddress.map(\.hostPort) ?? "?")",
                "capacity": "\(configuration.capacity)", "latency": "\(configuration.latency)",
            ])
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
