import FluxgateCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The data listener: accepts client connections and builds each one's pipeline.
///
/// Pipeline per client connection, head to tail:
/// `ClientTimeoutHandler` (raw bytes: slowloris and idle timeouts) →
/// NIOHTTP1 `HTTPRequestDecoder` (strict llhttp; header limit) → `ProxyHandler`
/// (writes responses as bytes, answers pipelined requests in order).
///
/// Runs as a swift-service-lifecycle `Service`: graceful shutdown closes the listener.
public final class GatewayServer: Service, Sendable {
    let runtime: GatewayRuntime
    /// Active health checks; started before the listener opens, stopped with it.
    public let healthChecker: HealthChecker
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex<(channel: (any Channel)?, pools: [NIOLoopBound<UpstreamPool>])>((nil, []))

    public init(config: GatewayConfig, group: any EventLoopGroup, logger: Logger) throws {
        self.runtime = try GatewayRuntime(config: config, logger: logger)
        self.healthChecker = HealthChecker(runtime: runtime, loop: group.next(), logger: logger)
        self.group = group
        self.logger = logger
    }

    /// Per-connection objects alive right now (handlers, exchanges, upstream connections).
    public var liveObjects: LiveObjects { runtime.live }

    /// The bound address once ``start()`` returned (port 0 resolves to the real port).
    public var localAddress: SocketAddress? {
        state.withLock { $0.channel?.localAddress }
    }

    /// Probes every upstream once (an upstream that is not there is out before the
    /// first request), binds the listener and returns its address.
    @discardableResult
    public func start() async throws -> SocketAddress {
        let config = runtime.config
        await healthChecker.start()
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        let loops = Array(group.makeIterator())
        // Each loop's pool holds its share of `pool.max_connections`, rounded up.
        let perLoop = config.pool.maxConnections == 0 ? 0 : (config.pool.maxConnections + loops.count - 1) / loops.count
        for loop in loops {
            let runtime = self.runtime
            pools[ObjectIdentifier(loop)] = try await loop.submit {
                NIOLoopBound(
                    UpstreamPool(eventLoop: loop, targets: runtime.targets, config: config, live: runtime.live, maxConnections: perLoop),
                    eventLoop: loop)
            }.get()
        }
        let poolsByLoop = pools
        let runtime = self.runtime
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = config.limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = config.limits.maxHeaderBytes
        let limits = decoderLimits

        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            // The decoder keeps the last receive buffer of every connection, idle ones
            // too: starting at 512 bytes instead of NIO's 2 048 saved 1.4 KiB per idle
            // client connection (docs/PERFORMANCE.md); the buffer still grows to 64 KiB
            // for connections that send more.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65_536))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let pool = poolsByLoop[ObjectIdentifier(channel.eventLoop)]?.value else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    let sync = channel.pipeline.syncOperations
                    let timeouts = ClientTimeoutHandler(
                        headerTimeout: config.timeouts.clientHeader, idleTimeout: config.timeouts.idle,
                        rejection: runtime.responses.rawRequestTimeout, live: runtime.live)
                    try sync.addHandler(timeouts)
                    try sync.addHandler(
                        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: limits)))
                    try sync.addHandler(ProxyHandler(runtime: runtime, pool: pool, timeouts: timeouts))
                }
            }
            .bind(host: config.listen.host, port: config.listen.port)
            .get()
        state.withLock {
            $0.channel = channel
            $0.pools = Array(pools.values)
        }
        let address = channel.localAddress.map(\.hostPort) ?? "\(config.listen)"
        logger.info(
            "gateway listening",
            metadata: [
                "address": "\(address)",
                "upstreams": "\(runtime.upstreams.map { "\($0.name)=\($0.url)" }.joined(separator: ", "))",
            ])
        return channel.localAddress!
    }

    public func run() async throws {
        if localAddress == nil { try await start() }
        try? await gracefulShutdown()
        try await stop()
    }

    /// Closes the listener and the idle upstream connections.
    public func stop() async throws {
        let (channel, pools) = state.withLock { state in
            defer { state.channel = nil }
            return (state.channel, state.pools)
        }
        try? await channel?.close()
        await healthChecker.stop()
        for pool in pools {
            try? await pool.eventLoop.submit { pool.value.closeAll() }.get()
        }
    }
}

extension SocketAddress {
    /// `127.0.0.1:8080` / `[::1]:8080`, for logs (the default description is NIO's debug form).
    public var hostPort: String {
        guard let ip = ipAddress, let port else { return "\(self)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
