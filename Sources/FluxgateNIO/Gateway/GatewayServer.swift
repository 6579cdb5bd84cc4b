import Foundation
import FluxgateCore
import FluxgateNIOSupport
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
///
/// Files: this one starts the listeners and builds each client connection's pipeline
/// (a parked connection's too); `GatewayServer+Drain.swift` the drain and the stop;
/// `GatewayServer+Reload.swift` the reload (load → validate → diff → swap) and the file
/// watch.
public final class GatewayServer: Service, Sendable {
    let runtime: GatewayRuntime
    /// Active health checks; started before the listener opens, stopped with it.
    public let healthChecker: HealthChecker
    public let observability: GatewayObservability
    let group: any EventLoopGroup
    let logger: Logger
    let source: ConfigSource?
    /// The keys the command line sets, as `GET /config`'s header names them
    /// (`listen (serve --listen)`); empty when it sets none.
    let commandLine: [String]
    let applicationLog: ApplicationLogSwitch?
    let state = Mutex<ListenerState>(ListenerState())
    let reloading = ReloadLock()
    /// `limits.max_connections` / `max_connections_per_client`, shared by every event loop.
    let connectionLimits: NIOLockedValueBox<ConnectionLimits>
    /// Refused connections lingering now (at most ``maxLingeringRefusals``).
    let lingeringRefusals = Atomic<Int>(0)

    struct ListenerState {
        var channel: (any Channel)?
        var admin: (any Channel)?
        /// The listeners' descriptors, for an upgrade to hand over (while the channels are open).
        var sockets = ListenerSockets()
        /// Each event loop's shared state; its timers' slot table lists the loop's open
        /// client connections (the drain reaches them there).
        var scratches: [NIOLoopBound<LoopScratch>] = []
        var pools: [NIOLoopBound<UpstreamPool>] = []
        var rotations: [RepeatedTask] = []
        var watcher: Task<Void, Never>?
        /// `reload.watch`'s state; every reload that reads the file records what it read here.
        var fileWatch: ConfigFileWatch?
        /// The certificates and keys the configuration file named when it was last read
        /// (``GatewayConfig/filesReadOnReload``) — applied or refused: the watch looks at
        /// those, so a refused file that names other certificates than the running
        /// configuration is not read again and again.
        var watchedFiles: [String] = []
        /// `dns.refresh`'s lookups, and what it remembers between rounds (names failing).
        var resolver: Task<Void, Never>?
        var addressRefresh = AddressRefresh<String, SocketAddress>()
        var parkWatcher: ParkWatcher?
        var perLoopConnections = 0
    }

    /// - Parameters:
    ///   - source: where `SIGHUP`, `POST /reload` and the file watch read the
    ///     configuration again; without one, ``reload(_:)`` still takes a config.
    ///   - registry: the Prometheus registry `/metrics` exports (the process's
    ///     swift-metrics registry, so library metrics join in); a private one by default.
    ///   - applicationLog: the application log's level and format, set from `log_level`
    ///     and `log_format` at start and on every reload.
    ///   - commandLine: the keys the command line overrides (the config already has them
    ///     applied), named in `GET /config`'s header.
    public init(
        config: GatewayConfig, group: any EventLoopGroup, logger: Logger, source: ConfigSource? = nil,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), applicationLog: ApplicationLogSwitch? = nil,
        commandLine: [String] = []
    ) throws {
        self.runtime = try GatewayRuntime(config: config, logger: logger, clusterLoop: group.next())
        self.healthChecker = HealthChecker(runtime: runtime, loop: group.next(), logger: logger)
        self.observability = GatewayObservability(runtime: runtime, registry: registry)
        self.group = group
        self.logger = logger
        self.source = source
        self.commandLine = commandLine
        self.applicationLog = applicationLog
        let limits = Self.makeConnectionLimits(config)
        self.connectionLimits = NIOLockedValueBox(limits)
        runtime.clientConnectionLimit.store(limits.maxTotal, ordering: .relaxed)
        applicationLog?.set(config.logLevel, format: config.logFormat)
    }

    static func makeConnectionLimits(_ config: GatewayConfig) -> ConnectionLimits {
        let total = config.limits.maxConnections > 0
            ? config.limits.maxConnections
            : ConnectionLimits.automaticTotal(
                descriptorLimit: DescriptorLimit.current, descriptorsPerConnection: config.runsEmbeddedDemo ? 3 : 2)
        return ConnectionLimits(
            maxTotal: total, maxPerClient: config.limits.maxConnectionsPerClient, ipv6Prefix: config.limits.clientIPv6Prefix)
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
    ///
    /// - Parameter sockets: listening sockets to use instead of binding (from systemd or
    ///   the process an upgrade replaces: ``matchInherited(_:config:)``).
    @discardableResult
    public func start(sockets: ListenerSockets = ListenerSockets()) async throws -> SocketAddress {
        let settings = runtime.settings
        let config = settings.config
        await healthChecker.start()
        await runtime.cluster?.start(predecessor: sockets.predecessor)
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        var stats: [ObjectIdentifier: NIOLoopBound<LoopStats>] = [:]
        var scratches: [ObjectIdentifier: NIOLoopBound<LoopScratch>] = [:]
        var rotations: [RepeatedTask] = []
        let loops = Array(group.makeIterator())
        let perLoop = Self.perLoopConnections(config, loops: loops.count)
        let loopCount = loops.count
        // One watcher for the parked connections of every loop (docs/ARCHITECTURE.md,
        // "Parked connections"); a gateway with more loops than it can name parks none.
        let parkWatcher = loops.count <= 256 ? try ParkWatcher() : nil
        for (index, loop) in loops.enumerated() {
            let runtime = self.runtime
            let (pool, loopStats, rotation, scratch) = try await loop.submit {
                let scratch = NIOLoopBound(LoopScratch(eventLoop: loop), eventLoop: loop)
                scratch.value.loops = loopCount
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
        // An upstream out of rotation gives back the slots its requests hold, on every
        // loop (``UpstreamSlotHolders``): a hung one otherwise held them until its
        // requests timed out, and the gateway shed everything meanwhile.
        let allLoopStats = Array(stats.values)
        runtime.router.onLeftRotation { [gate = runtime.gate] upstreams in
            for bound in allLoopStats {
                bound.eventLoop.execute {
                    let count = bound.value.slotHolders.giveBack(upstreams)
                    gate.releaseGivenBack(count: count, now: MonotonicTime(bound.eventLoop.now))
                }
            }
        }
        let poolsByLoop = pools
        let statsByLoop = stats
        let scratchByLoop = scratches
        let admin = AdminServer(observability: observability, reload: { [self] in await self.reloadFromSource() }, logger: logger, commandLine: commandLine)
        let (adminChannel, adminSocket) = try await ListenerError.naming("admin_listen \(config.adminListen)") {
            try await admin.bind(config.adminListen, group: group, family: config.dns.family, socket: sockets.admin)
        }
        let channel: any Channel
        let dataSocket: CInt
        do {
            // A host name binds the address `dns.family` picks (`localhost`: 127.0.0.1
            // by default), as an upstream's name connects to it.
            dataSocket = try sockets.data
                ?? ListeningSocket.open(
                    try AddressLookup.address(config.listen.host, port: config.listen.port, family: config.dns.family),
                    backlog: Self.backlog)
            channel = try await ServerBootstrap(group: group)
                .pausingAcceptsWhenOutOfDescriptors()
                // Accepts per wake-up of the listening socket (NIO's default: 4). With
                // thousands of client sockets ready in every loop iteration, 4 at a time
                // let a burst of 10 000 connects overflow the backlog: the kernel then
                // drops the handshake's last ACK, and those clients' first requests
                // waited for SYN-ACK retransmits — 1, 3, 7 s (bench/compare.sh's c10k
                // row, docs/PERFORMANCE.md). 64 halved the wait, not more. HAProxy's
                // `tune.maxaccept` is only 4, but `tune.maxpollevents` bounds each poll; NIO
                // doubles its batch whenever it comes back full (Selector's
                // `growEventArrayIfNeeded`), so one iteration serves every ready socket.
                .serverChannelOption(.maxMessagesPerRead, value: Self.acceptsPerWakeup)
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
                .withBoundSocket(dataSocket)
                .get()
            ListeningSocket.setBacklog(dataSocket, Self.backlog)
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
            $0.sockets = ListenerSockets(data: dataSocket, admin: adminSocket)
            $0.scratches = Array(scratches.values)
            $0.pools = Array(pools.values)
            $0.rotations = rotations
            $0.perLoopConnections = perLoop
        }
        startWatching()
        warnOverListed(settings)
        startResolving()
        let address = channel.localAddress.map(\.hostPort) ?? "\(config.listen)"
        logger.info(
            "gateway listening",
            metadata: [
                "address": "\(address)",
                "admin": "\(adminChannel.localAddress.map(\.hostPort) ?? "\(config.adminListen)")",
                "upstreams": "\(settings.upstreams.indices.map { settings.describeUpstream($0) }.joined(separator: ", "))",
                "max_connections": "\(connectionLimits.withLockedValue { $0.maxTotal })",
                "descriptor_limit": "\(DescriptorLimit.current)",
            ])
        return channel.localAddress!
    }

    private typealias PerLoop<Value: AnyObject> = [ObjectIdentifier: NIOLoopBound<Value>]

    /// Refused connections that may linger at once (``RefuseConnectionHandler``); beyond,
    /// a refusal closes at once as before.
    static let maxLingeringRefusals = 256

    /// A place among the lingering refusals, if one is free.
    private func takeRefusalLinger() -> Bool {
        if lingeringRefusals.add(1, ordering: .relaxed).newValue <= Self.maxLingeringRefusals { return true }
        lingeringRefusals.subtract(1, ordering: .relaxed)
        return false
    }

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
        let allStats = stats
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
        let address = parked?.address ?? channel.remoteAddress?.clientIP ?? "unknown"
        if parked == nil, let refusal = openCounted(address: address, on: channel.eventLoop, scratches: scratches, stats: allStats) {
            stats.traffic.connectionRefused(perClient: refusal == .perClient)
            // A plain-text answer means nothing on a TLS listener: there it is a close.
            // The close lingers while few refusals do: each holds a descriptor the cap
            // was set to protect, so a flood of refused connections closes at once.
            let lingers = settings.serverTLS == nil && config.timeouts.lingeringClose > .zero && takeRefusalLinger()
            if lingers { channel.closeFuture.whenComplete { [self] _ in lingeringRefusals.subtract(1, ordering: .relaxed) } }
            try sync.addHandler(
                RefuseConnectionHandler(
                    answer: settings.serverTLS == nil ? runtime.responses.tooManyConnections(date: scratch.dateField(now: MonotonicTime(channel.eventLoop.now))) : nil,
                    lingerTimeout: lingers ? .nanoseconds(config.timeouts.lingeringClose.nanosecondsClamped) : nil))
            return
        }
        // Parked when idle: plain TCP with the gateway's own parser only (TLS state
        // and NIOHTTP1's decoder live in the pipeline); the others are offered all the
        // same, to be listed for eviction at the connection cap.
        let parks = scratch.parking != nil && settings.serverTLS == nil && config.parser != .llhttp
        // Counted until the handler sees the connection end (or, never
        // added because a step below threw, until it is released).
        let timeouts = ClientConnectionTimeouts(
            headerTimeout: config.timeouts.clientHeader, idleTimeout: config.timeouts.idle,
            parkAfter: scratch.parking != nil ? config.timeouts.parkAfter : .zero, sendTimeout: config.timeouts.clientSend)
        let handler = ProxyHandler(
            runtime: runtime, pool: pool, timeouts: timeouts, stats: stats, scratch: scratch, https: settings.serverTLS != nil,
            clientCertificates: config.tls.verifyClient, countedIn: parked == nil ? connectionLimits : parked?.limits, clientAddress: address, revived: parked?.reuse,
            canPark: parks)
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

    /// Counts a new connection in, or says which cap refuses it. At `max_connections`
    /// this loop's longest-parked connection — idle for at least `timeouts.park_after` —
    /// is closed to make room, so clients holding idle connections cannot keep new ones
    /// out (nginx reuses idle keep-alive connections the same way when it runs out of
    /// `worker_connections`); with none parked, the longest-idle TLS (or `parser:
    /// llhttp`) connection idle that long. When this loop has neither but another loop
    /// does (the gateway-wide counts of parked and listed connections say so), the new
    /// one is let in above the cap and that loop closes its longest-idle connection
    /// (``evictElsewhere(from:scratches:stats:)``): where the idle connections sit must
    /// not decide whether a newcomer is served. Only when no loop has one is it
    /// refused. The per-client cap never evicts.
    private func openCounted(
        address: String, on loop: any EventLoop, scratches: PerLoop<LoopScratch>, stats: PerLoop<LoopStats>
    ) -> ConnectionLimits.Refusal? {
        let refusal = connectionLimits.withLockedValue { $0.open(address: address) }
        guard refusal == .total, let lot = scratches[ObjectIdentifier(loop)]?.value.parking else { return refusal }
        if lot.evictOldest() {
            stats[ObjectIdentifier(loop)]?.value.traffic.connectionEvicted()
            return connectionLimits.withLockedValue { $0.open(address: address) }
        }
        guard scratches.count > 1 else { return refusal }
        let live = runtime.live
        let elsewhere = live.parkedConnections.load(ordering: .relaxed) + live.idleListed.load(ordering: .relaxed)
        guard elsewhere > 0 else { return refusal }
        let borrowed = connectionLimits.withLockedValue { $0.open(address: address, evictableElsewhere: elsewhere) }
        if borrowed == nil { evictElsewhere(from: loop, scratches: scratches, stats: stats) }
        return borrowed
    }

    /// Carries out an eviction promised to a newcomer let in above `max_connections`
    /// on `loop`: the other loops, one after another each on its own thread, until one
    /// closes its longest-idle connection; the promise is given back either way.
    private func evictElsewhere(from loop: any EventLoop, scratches: PerLoop<LoopScratch>, stats: PerLoop<LoopStats>) {
        let others = scratches.filter { $0.key != ObjectIdentifier(loop) }.map(\.value)
        let limits = connectionLimits
        @Sendable func ask(_ index: Int) {
            guard index < others.count else {
                limits.withLockedValue { $0.evictionCarriedOut() }  // none left: above the cap until one closes
                return
            }
            let scratch = others[index]
            scratch.eventLoop.execute {
                guard let lot = scratch.value.parking, lot.evictOldest() else { return ask(index + 1) }
                stats[ObjectIdentifier(scratch.eventLoop)]?.value.traffic.connectionEvicted()
                limits.withLockedValue { $0.evictionCarriedOut() }
            }
        }
        ask(0)
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
                logger.warning("a parked connection could not be resumed", metadata: ["error": "\(StartupProblems.reason(error))"])
            }
    }

    /// Each loop's pool holds its share of `pool.max_connections`, rounded up.
    static func perLoopConnections(_ config: GatewayConfig, loops: Int) -> Int {
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
}
