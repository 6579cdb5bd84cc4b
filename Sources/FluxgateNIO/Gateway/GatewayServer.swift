import Foundation
import FluxgateCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle
import Synchronization

/// The data listener and the admin listener: accepts client connections and builds
/// each one's pipeline; reloads the configuration; drains on graceful shutdown.
///
/// Pipeline per client connection, head to tail: [with TLS: `PlainHTTPOnTLSPortHandler`
/// (until the first bytes), `NIOSSLServerHandler`, `TLSWritePacer`] →
/// `ProxyHandler`, one handler that parses requests from bytes (``RequestHeadParser``),
/// admits, forwards and relays, and drives the connection's timeouts
/// (no pipeline stage of their own). A lingering close adds its
/// `LingeringCloseHandler` when it begins. With `parser: llhttp`, NIOHTTP1's
/// `HTTPRequestDecoder` and `LlhttpRequestBridge` sit before `ProxyHandler`.
///
/// Runs as a swift-service-lifecycle `Service`: graceful shutdown drains (stops
/// accepting, lets requests in flight finish within `drain_timeout`, closes idle
/// keep-alive connections and ends busy ones after their current answer), then closes
/// the admin listener, the health checker and the idle upstream connections.
public final class GatewayServer: Service, Sendable {
    let runtime: GatewayRuntime
    /// Active health checks; started before the listener opens, stopped with it.
    public let healthChecker: HealthChecker
    public let observability: GatewayObservability
    private let group: any EventLoopGroup
    private let logger: Logger
    private let source: ConfigSource?
    private let logLevel: LogLevelSwitch?
    private let state = Mutex<ListenerState>(ListenerState())
    private let reloading = Mutex(false)
    /// `limits.max_connections` / `max_connections_per_client`, shared by every event loop.
    private let connectionLimits: NIOLockedValueBox<ConnectionLimits>

    private struct ListenerState {
        var channel: (any Channel)?
        var admin: (any Channel)?
        /// Each event loop's shared state; its timers' slot table lists the loop's open
        /// client connections (the drain reaches them there).
        var scratches: [NIOLoopBound<LoopScratch>] = []
        var pools: [NIOLoopBound<UpstreamPool>] = []
        var rotations: [RepeatedTask] = []
        var watcher: Task<Void, Never>?
        var parkWatcher: ParkWatcher?
        var perLoopConnections = 0
    }

    /// - Parameters:
    ///   - source: where `SIGHUP`, `POST /reload` and the file watch read the
    ///     configuration again; without one, ``reload(_:)`` still takes a config.
    ///   - registry: the Prometheus registry `/metrics` exports (the process's
    ///     swift-metrics registry, so library metrics join in); a private one by default.
    ///   - logLevel: the application log's level switch, set from `log_level` at start
    ///     and on every reload.
    public init(
        config: GatewayConfig, group: any EventLoopGroup, logger: Logger, source: ConfigSource? = nil,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), logLevel: LogLevelSwitch? = nil
    ) throws {
        self.runtime = try GatewayRuntime(config: config, logger: logger, clusterLoop: group.next())
        self.healthChecker = HealthChecker(runtime: runtime, loop: group.next(), logger: logger)
        self.observability = GatewayObservability(runtime: runtime, registry: registry)
        self.group = group
        self.logger = logger
        self.source = source
        self.logLevel = logLevel
        self.connectionLimits = NIOLockedValueBox(Self.makeConnectionLimits(config))
        logLevel?.set(config.logLevel)
    }

    private static func makeConnectionLimits(_ config: GatewayConfig) -> ConnectionLimits {
        let total = config.limits.maxConnections > 0
            ? config.limits.maxConnections
            : ConnectionLimits.automaticTotal(
                descriptorLimit: DescriptorLimit.current, descriptorsPerConnection: config.runsEmbeddedDemo ? 3 : 2)
        return ConnectionLimits(maxTotal: total, maxPerClient: config.limits.maxConnectionsPerClient)
    }

    /// Client connections counted against `limits.max_connections` right now.
    public var openClientConnections: Int { connectionLimits.withLockedValue { $0.open } }

    /// Per-connection objects alive right now (handlers, exchanges, upstream connections).
    public var liveObjects: LiveObjects { runtime.live }

    /// The bound address once ``start()`` returned (port 0 resolves to the real port).
    public var localAddress: SocketAddress? {
        state.withLock { $0.channel?.localAddress }
    }

    /// The admin listener's address once ``start()`` returned.
    public var adminAddress: SocketAddress? {
        state.withLock { $0.admin?.localAddress }
    }

    /// Probes every upstream once (an upstream that is not there is out before the
    /// first request), binds the admin listener and the data listener and returns the
    /// data listener's address.
    @discardableResult
    public func start() async throws -> SocketAddress {
        let settings = runtime.settings
        let config = settings.config
        await healthChecker.start()
        await runtime.cluster?.start()
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        var stats: [ObjectIdentifier: NIOLoopBound<LoopStats>] = [:]
        var scratches: [ObjectIdentifier: NIOLoopBound<LoopScratch>] = [:]
        var rotations: [RepeatedTask] = []
        let loops = Array(group.makeIterator())
        let perLoop = Self.perLoopConnections(config, loops: loops.count)
        // One watcher for the parked connections of every loop (docs/ARCHITECTURE.md,
        // "Parked connections"); a gateway with more loops than it can name parks none.
        let parkWatcher = loops.count <= 256 ? try ParkWatcher() : nil
        for (index, loop) in loops.enumerated() {
            let runtime = self.runtime
            let (pool, loopStats, rotation, scratch) = try await loop.submit {
                let scratch = NIOLoopBound(LoopScratch(eventLoop: loop), eventLoop: loop)
                if let parkWatcher {
                    scratch.value.parking = ParkingLot(
                        eventLoop: loop, index: index, watcher: parkWatcher, live: runtime.live)
                }
                let pool = NIOLoopBound(
                    UpstreamPool(
                        eventLoop: loop, targets: settings.targets, tls: settings.upstreamTLS, config: config, live: runtime.live,
                        maxConnections: perLoop, scratch: scratch.value),
                    eventLoop: loop)
                let stats = NIOLoopBound(LoopStats(), eventLoop: loop)
                let rotation = loop.scheduleRepeatedTask(initialDelay: LoopStats.window, delay: LoopStats.window) { _ in
                    stats.value.rotate()
                }
                return (pool, stats, rotation, scratch)
            }.get()
            scratches[ObjectIdentifier(loop)] = scratch
            pools[ObjectIdentifier(loop)] = pool
            stats[ObjectIdentifier(loop)] = loopStats
            rotations.append(rotation)
        }
        observability.attach(loops: Array(stats.values), pools: Array(pools.values))
        let poolsByLoop = pools
        let statsByLoop = stats
        let scratchByLoop = scratches
        let admin = AdminServer(observability: observability, reload: { [self] in await self.reloadFromSource() }, logger: logger)
        let adminChannel = try await ListenerError.naming("admin_listen \(config.adminListen)") {
            try await admin.bind(config.adminListen, group: group)
        }
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(pause: .milliseconds(250)))
                    }
                }
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                // NIO keeps the receive buffers a channel read into and never shrinks
                // them; the gateway's channels borrow theirs from the loop per read and
                // give them back (CompactRecvAllocator with the loop's scratch, set below),
                // so NIO keeps only the first, `initial` bytes: 256 covers the heads curl,
                // wrk, hey and k6 send (40-150 bytes) in one read (starting at 512 instead
                // of NIO's 2 048 saved 1.4 KiB per idle connection, 256 another 256:
                // docs/PERFORMANCE-HISTORY.md). One read per wake-up: with more, NIO
                // keeps a buffer per read of the cycle.
                .childChannelOption(.maxMessagesPerRead, value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try self.setUpClientChannel(channel, pools: poolsByLoop, stats: statsByLoop, scratches: scratchByLoop, parked: nil)
                    }
                }
                .bind(host: config.listen.host, port: config.listen.port)
                .get()
        } catch {
            try? await adminChannel.close()
            throw ListenerError("listen \(config.listen)", error)
        }
        if let parkWatcher {
            // A parked socket that wakes is built into a client connection again on its loop.
            var dispatch: [@Sendable ([UInt64]) -> Void] = []
            for loop in loops {  // in the order of the lots' indices
                guard let scratch = scratchByLoop[ObjectIdentifier(loop)] else { throw ChannelError.ioOnClosedChannel }
                try await loop.submit {
                    scratch.value.parking?.revive = { [self] handover in
                        self.revive(handover, on: loop, pools: poolsByLoop, stats: statsByLoop, scratches: scratchByLoop)
                    }
                }.get()
                dispatch.append { ids in loop.execute { scratch.value.parking?.wake(ids) } }
            }
            parkWatcher.start(dispatch: dispatch)
        }
        state.withLock {
            $0.parkWatcher = parkWatcher
            $0.channel = channel
            $0.admin = adminChannel
            $0.scratches = Array(scratches.values)
            $0.pools = Array(pools.values)
            $0.rotations = rotations
            $0.perLoopConnections = perLoop
        }
        startWatching()
        let address = channel.localAddress.map(\.hostPort) ?? "\(config.listen)"
        logger.info(
            "gateway listening",
            metadata: [
                "address": "\(address)",
                "admin": "\(adminChannel.localAddress.map(\.hostPort) ?? "\(config.adminListen)")",
                "upstreams": "\(settings.upstreams.map { "\($0.name)=\($0.url)" }.joined(separator: ", "))",
                "max_connections": "\(connectionLimits.withLockedValue { $0.maxTotal })",
                "descriptor_limit": "\(DescriptorLimit.current)",
            ])
        return channel.localAddress!
    }

    private typealias PerLoop<Value: AnyObject> = [ObjectIdentifier: NIOLoopBound<Value>]

    /// A client connection's pipeline: a new one (counted against the connection
    /// limits here) or one built again around a parked socket (`parked`: counted when
    /// it was accepted).
    private func setUpClientChannel(
        _ channel: any Channel, pools: PerLoop<UpstreamPool>, stats: PerLoop<LoopStats>, scratches: PerLoop<LoopScratch>,
        parked: ParkingLot.Parked?
    ) throws {
        // A woken connection's count passes to its handler; a step that throws before
        // the handler exists leaves it here (after, the handler does).
        var countHandedOver = false
        defer { if let parked, !countHandedOver { parked.leaveCount() } }
        guard let pool = pools[ObjectIdentifier(channel.eventLoop)]?.value,
            let stats = stats[ObjectIdentifier(channel.eventLoop)]?.value,
            let scratch = scratches[ObjectIdentifier(channel.eventLoop)]?.value
        else {
            throw ChannelError.ioOnClosedChannel
        }
        // Timeouts and TLS as of now: a reload reaches connections accepted after it.
        let settings = runtime.settings
        try channel.syncOptions?.setOption(
            .recvAllocator,
            value: CompactRecvAllocator(initial: 256, scratch: scratch, ceiling: settings.serverTLS == nil ? Int(CompactRecvAllocator.maximum) : ProxyHandler.tlsChunk))
        let config = settings.config
        let sync = channel.pipeline.syncOperations
        let address = parked?.address ?? channel.remoteAddress?.ipAddress ?? "unknown"
        if parked == nil, let refusal = connectionLimits.withLockedValue({ $0.open(address: address) }) {
            stats.traffic.connectionRefused(perClient: refusal == .perClient)
            // A plain-text answer means nothing on a TLS listener: there it is a close.
            try sync.addHandler(
                RefuseConnectionHandler(answer: settings.serverTLS == nil ? runtime.responses.rawTooManyConnections : nil))
            return
        }
        // Parked when idle: plain TCP with the gateway's own parser only (TLS state
        // and NIOHTTP1's decoder live in the pipeline).
        let parks = scratch.parking != nil && settings.serverTLS == nil && config.parser != .llhttp
        // Counted until the handler sees the connection end (or, never
        // added because a step below threw, until it is released).
        let timeouts = ClientConnectionTimeouts(
            headerTimeout: config.timeouts.clientHeader, idleTimeout: config.timeouts.idle,
            parkAfter: parks ? config.timeouts.parkAfter : .zero)
        let handler = ProxyHandler(
            runtime: runtime, pool: pool, timeouts: timeouts, stats: stats, scratch: scratch, https: settings.serverTLS != nil,
            countedIn: parked == nil ? connectionLimits : parked?.limits, clientAddress: address, revived: parked != nil)
        countHandedOver = true
        if let tls = settings.serverTLS {
            try sync.addHandler(
                PlainHTTPOnTLSPortHandler(
                    stats: stats, lingerTimeout: .nanoseconds(config.timeouts.lingeringClose.nanosecondsClamped)))
            try sync.addHandler(NIOSSLServerHandler(context: tls))
            try sync.addHandler(TLSWritePacer())
        }
        if config.parser == .llhttp {
            // The fallback: llhttp reads the raw bytes first (docs/CONFIGURATION.md).
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderListSize = config.limits.maxHeaderBytes
            limits.maxHeaderFieldSize = config.limits.maxHeaderBytes
            try sync.addHandler(
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: limits)))
            try sync.addHandler(LlhttpRequestBridge())
        }
        try sync.addHandler(handler)
    }

    /// A parked socket woke (input, a close or an error): a new channel on `loop` takes
    /// it over with the connection's count. The kernel kept every byte that arrived.
    private func revive(
        _ handover: ParkingLot.Parked, on loop: any EventLoop, pools: PerLoop<UpstreamPool>, stats: PerLoop<LoopStats>,
        scratches: PerLoop<LoopScratch>
    ) {
        let taken = NIOLockedValueBox(false)
        ClientBootstrap(group: loop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelInitializer { [self] channel in
                taken.withLockedValue { $0 = true }
                return channel.eventLoop.makeCompletedFuture {
                    try self.setUpClientChannel(channel, pools: pools, stats: stats, scratches: scratches, parked: handover)
                }
            }
            .withConnectedSocket(handover.descriptor)
            .whenFailure { [logger] error in
                // Before the initializer NIO did not take the socket; after it, the
                // channel's close closed it and the count was left (setUpClientChannel).
                if !taken.withLockedValue({ $0 }) { handover.close() }
                logger.warning("a parked connection could not be resumed", metadata: ["error": "\(error)"])
            }
    }

    /// Each loop's pool holds its share of `pool.max_connections`, rounded up.
    private static func perLoopConnections(_ config: GatewayConfig, loops: Int) -> Int {
        config.pool.maxConnections == 0 ? 0 : (config.pool.maxConnections + loops - 1) / loops
    }

    public func run() async throws {
        if localAddress == nil { try await start() }
        try? await gracefulShutdown()
        await drain()
        try await stop()
    }

    /// Receive buffers the loops lent to reads so far, and those they keep now (tests).
    public func receiveBuffers() async throws -> (lent: Int, kept: Int) {
        let scratches = state.withLock { $0.scratches }
        var lent = 0
        var kept = 0
        for scratch in scratches {
            let counts = try await scratch.eventLoop.submit { (scratch.value.receiveBuffersLent, scratch.value.keptReceiveBuffers) }.get()
            lent += counts.0
            kept += counts.1
        }
        return (lent, kept)
    }

    // MARK: Drain

    /// Graceful drain: stop accepting, close idle client connections, let each busy one
    /// finish its current request (answered with `Connection: close`) for up to
    /// `drain_timeout`; `/readyz` answers 503 from the start. Returns when every client
    /// connection closed or the timeout passed (what is left is closed by ``stop()``).
    public func drain() async {
        let (listener, scratches) = state.withLock { ($0.channel, $0.scratches) }
        guard let listener else { return }
        let timeout = runtime.settings.config.drainTimeout
        runtime.startDraining()
        let atStart = (connections: runtime.live.openClientConnections, gate: runtime.gate.snapshot)
        let requestsAtStart = runtime.live.totalExchanges
        logger.notice(
            "draining: stopped accepting; finishing requests in flight",
            metadata: [
                "connections": "\(atStart.connections)", "in_flight": "\(atStart.gate.inFlight)", "queued": "\(atStart.gate.queued)",
                "drain_timeout": "\(DurationParser.format(timeout))",
            ])
        let started = ContinuousClock.now
        // Tell every open connection, on its own loop, and stop accepting. (NIOExtras'
        // ServerQuiescingHelper did this until 2026-12-01; it kept each connection in a
        // dictionary with a close callback, ~120 bytes per idle connection, where the
        // loops' timer slot tables already list them.) A connection accepted before the
        // listener is closed finds the runtime draining when it opens.
        for scratch in scratches {
            scratch.eventLoop.execute {
                scratch.value.parking?.closeAll()
                scratch.value.timers.forEachOwner { ($0 as? ProxyHandler)?.drain() }
            }
        }
        try? await listener.close()
        // Polled: the drain is rare and its end needs no precision finer than this.
        var finished = runtime.live.openClientConnections == 0
        while !finished && ContinuousClock.now - started < timeout {
            try? await Task.sleep(for: .milliseconds(20))
            finished = runtime.live.openClientConnections == 0
        }
        let left = runtime.live.openClientConnections
        let elapsed = ContinuousClock.now - started
        let metadata: Logger.Metadata = [
            "seconds": "\(Double(elapsed.nanosecondsClamped / 1_000_000) / 1000)", "connections_left": "\(left)",
            "requests_during_drain": "\(runtime.live.totalExchanges - requestsAtStart)",
        ]
        if finished {
            logger.notice("drained: every client connection closed", metadata: metadata)
        } else {
            logger.warning("drain timeout: closing the connections still open", metadata: metadata)
        }
    }

    /// Closes the listeners, the health checker, the access log and the idle upstream connections.
    public func stop() async throws {
        let (channel, admin, pools, rotations, watcher, scratches, parkWatcher) = state.withLock { state in
            defer {
                state.channel = nil
                state.admin = nil
                state.scratches = []
                state.rotations = []
                state.watcher = nil
                state.parkWatcher = nil
            }
            return (state.channel, state.admin, state.pools, state.rotations, state.watcher, state.scratches, state.parkWatcher)
        }
        watcher?.cancel()
        parkWatcher?.stop()
        for scratch in scratches {
            try? await scratch.eventLoop.submit {
                scratch.value.parking?.closeAll()
                scratch.value.parking?.revive = nil
            }.get()
        }
        for rotation in rotations { rotation.cancel() }
        try? await channel?.close()
        try? await admin?.close()
        await healthChecker.stop()
        await runtime.cluster?.stop()
        for pool in pools {
            try? await pool.eventLoop.submit { pool.value.closeAll() }.get()
        }
        await runtime.accessLog.shutdown()
    }

    // MARK: Reload

    /// Reads the configuration from its source again and applies it (SIGHUP,
    /// `POST /reload`, the file watch).
    public func reloadFromSource() async -> ReloadOutcome {
        guard let source else {
            return refuse(["no config file to reload from: the gateway runs on built-in defaults"])
        }
        let config: GatewayConfig
        do {
            config = try source.load()
        } catch {
            return refuse(error.errors.map(\.description), file: source.path)
        }
        return await reload(config)
    }

    /// Applies `config` without closing a connection or failing a request: new
    /// limits, upstreams (added, removed, reweighted), health settings, routes, log
    /// level and access log take effect at once; upstreams that stay keep their health
    /// state; connections take the new settings at their next request. Keys only a
    /// restart can change (`listen`, `admin_listen`, `workers`, the embedded demo)
    /// refuse the whole reload; so does anything invalid. The old configuration then
    /// stays in force.
    public func reload(_ config: GatewayConfig) async -> ReloadOutcome {
        let busy = reloading.withLock { busy in
            defer { busy = true }
            return busy
        }
        guard !busy else { return refuse(["a reload is already in progress"], count: false) }
        defer { reloading.withLock { $0 = false } }
        let old = runtime.settings
        let prepared: (GatewaySettings, UpstreamSlots.Assignment)
        do {
            prepared = try runtime.prepare(config)
        } catch {
            switch error {
            case ReloadError.needsRestart(let keys): return refuse(["\(ReloadError.needsRestart(keys))"])
            case ReloadError.invalid(let problems): return refuse(problems)
            default: return refuse(["\(error)"])
            }
        }
        let (settings, assignment) = prepared
        let pools = state.withLock { $0.pools }
        let perLoop = Self.perLoopConnections(config, loops: max(1, pools.count))
        // Pools learn every slot before the router may pick one.
        for pool in pools {
            try? await pool.eventLoop.submit {
                pool.value.reconfigure(
                    targets: settings.targets, tls: settings.upstreamTLS, retired: settings.upstreams.map(\.retired), config: config, maxConnections: perLoop)
            }.get()
        }
        runtime.install(settings, assignment, now: MonotonicTime.current)
        let limits = Self.makeConnectionLimits(config)
        connectionLimits.withLockedValue {
            $0.maxTotal = limits.maxTotal
            $0.maxPerClient = limits.maxPerClient
        }
        logLevel?.set(config.logLevel)
        runtime.countReload(success: true)
        let changes = Self.describeChanges(from: old, to: settings, assignment: assignment)
        logger.notice(
            "configuration reloaded",
            metadata: ["version": "\(settings.version)", "changes": "\(changes.isEmpty ? "none" : changes.joined(separator: "; "))"])
        return ReloadOutcome(result: "success", version: settings.version, errors: [], changes: changes)
    }

    private func refuse(_ errors: [String], file: String? = nil, count: Bool = true) -> ReloadOutcome {
        if count { runtime.countReload(success: false) }
        logger.error(
            "configuration reload refused; the running configuration stays",
            metadata: ["errors": "\(errors.joined(separator: "; "))", "file": "\(file ?? source?.path ?? "-")"])
        return ReloadOutcome(result: "error", version: runtime.settings.version, errors: errors, changes: [])
    }

    static func describeChanges(from old: GatewaySettings, to new: GatewaySettings, assignment: UpstreamSlots.Assignment) -> [String] {
        var changes = new.config.changedSections(from: old.config).filter { $0 != "upstreams" && $0 != "demo" }
        let added = assignment.fresh.map { new.upstreams[$0].name }
        let removed = assignment.retired.map { new.upstreams[$0].name }
        let changed = new.upstreams.indices.filter { index in
            index < old.upstreams.count && !assignment.fresh.contains(index) && !new.upstreams[index].retired
                && new.upstreams[index] != old.upstreams[index]
        }.map { new.upstreams[$0].name }
        if !added.isEmpty { changes.append("upstreams added: \(added.joined(separator: ", "))") }
        if !removed.isEmpty { changes.append("upstreams removed: \(removed.joined(separator: ", "))") }
        if !changed.isEmpty { changes.append("upstreams changed: \(changed.joined(separator: ", "))") }
        if new.config.tls.enabled { changes.append("tls certificate and key read again") }
        return changes
    }

    /// `reload.watch`: checks the file's modification time, size and inode every
    /// `reload.interval` and reloads when they change (an editor's save, a Kubernetes
    /// ConfigMap update swapping a symlink).
    private func startWatching() {
        guard let source, runtime.settings.config.reload.watch else { return }
        let task = Task { [self] in
            var last = Self.fingerprint(source.path)
            while !Task.isCancelled {
                let config = runtime.settings.config.reload
                do { try await Task.sleep(for: max(.milliseconds(100), config.interval)) } catch { return }
                guard config.watch else { continue }
                let now = Self.fingerprint(source.path)
                guard now != last else { continue }
                last = now
                logger.info("config file changed; reloading", metadata: ["file": "\(source.path)"])
                _ = await reloadFromSource()
            }
        }
        state.withLock { $0.watcher = task }
    }

    private static func fingerprint(_ path: String) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(modified)/\(attributes[.size] ?? 0)/\(attributes[.systemFileNumber] ?? 0)"
    }
}

/// Where the configuration is read again on reload.
public struct ConfigSource: Sendable {
    public var path: String
    public var load: @Sendable () throws(ConfigErrors) -> GatewayConfig

    public init(path: String, load: @escaping @Sendable () throws(ConfigErrors) -> GatewayConfig) {
        self.path = path
        self.load = load
    }
}

extension SocketAddress {
    /// `127.0.0.1:8080` / `[::1]:8080`, for logs (the default description is NIO's debug form).
    public var hostPort: String {
        guard let ip = ipAddress, let port else { return "\(self)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// The whole pipeline of a connection refused at accept (`limits.max_connections`,
/// `limits.max_connections_per_client`): one prepared 503 with `Connection: close`,
/// then the close. Nothing of the client's input is read.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let answer: ByteBuffer?

    init(answer: ByteBuffer?) {
        self.answer = answer
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let answer else {
            context.close(promise: nil)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(answer)).whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@available(*, unavailable)
extension RefuseConnectionHandler: Sendable {}

/// Out of descriptors (EMFILE, ENFILE) or kernel buffers at accept: the listener stops
/// watching for connections for `pause`, then resumes by itself (nginx disables accept
/// events for 500 ms). Connections wait in the backlog meanwhile.
///
/// Written here instead of using NIO's `AcceptBackoffHandler`: that one delays the next
/// `read()`, but after a failed `accept` NIO keeps the listening socket registered for
/// readability, and with a connection waiting in the backlog the level-triggered epoll
/// wakes the loop again at once — measured: 100 % of a core for as long as the
/// descriptors stayed exhausted (`prlimit --nofile=128`, 300 connections). Turning
/// `autoRead` off unregisters the socket, which is what stops the spin.
final class AcceptPauseHandler: ChannelInboundHandler {
    typealias InboundIn = Any
    private let pause: TimeAmount
    /// Accepting is paused now (for tests: EmbeddedChannel ignores `autoRead`).
    private(set) var paused = false

    init(pause: TimeAmount) {
        self.pause = pause
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let io = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(io.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        guard !paused, let options = context.channel.syncOptions else { return }
        paused = true
        try? options.setOption(.autoRead, value: false)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: pause) {
            let (handler, context) = loopBound.value
            handler.paused = false
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }
}

@available(*, unavailable)
extension AcceptPauseHandler: Sendable {}
