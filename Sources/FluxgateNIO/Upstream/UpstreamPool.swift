import FluxgateCore
import NIOCore
import NIOPosix

/// Keep-alive connections to every upstream, owned by one event loop.
///
/// One pool per event loop, as nginx workers and Envoy's per-worker pools do: a
/// request is served on its client's loop from start to end, so acquiring,
/// releasing and connecting need no lock and never hop threads. Idle connections are
/// reused newest first (the warmest socket), capped per upstream
/// (`pool.max_idle_per_upstream`, as nginx's `keepalive N`) and closed after
/// `pool.idle_timeout` unused. With `pool.max_connections`, this loop's share of the
/// cap bounds the connections open to each upstream and requests beyond it wait for
/// one (``ConnectionCap``); `pool.max_connecting` bounds the connects in progress per
/// upstream the same way, so a burst of new requests reuses the first connections that
/// connect or come back instead of each opening its own.
///
/// Released connections are parked or closed as ``IdleConnectionPolicy`` says (the idle
/// cap, its grace, the sweep's interval); the newest parked connection is reused first.
final class UpstreamPool {
    let eventLoop: any EventLoop
    private var targets: [SocketAddress]
    /// Per slot: bumped when its address changes (`dns.refresh`, or a reload that
    /// re-resolves it); a connection opened to an older address is closed, not parked.
    private var generations: [Int]
    /// Per slot, for `https://` upstreams: the TLS handler's context and server name.
    private var tls: [UpstreamTLSTarget?]
    /// Slots a reload removed: their connections are closed, not parked.
    private var retired: [Bool]
    private var idle: [[UpstreamConnection]]
    private var idlePolicy: IdleConnectionPolicy
    private var connectTimeout: TimeAmount
    private var sweepTimer: Scheduled<Void>?
    private var requestIDs: RequestIDGenerator
    private let live: LiveObjects
    /// The loop's scratch: lends the connections their receive buffers (nil in some tests).
    let scratch: LoopScratch?
    private var cap: ConnectionCap
    private var waiters: [Int: (upstream: Int, completion: (Result<UpstreamConnection, any Error>) -> Void)] = [:]
    private var nextWaiterID = 0

    /// `maxConnections`: this loop's share of `pool.max_connections` (0 = no cap).
    init(
        eventLoop: any EventLoop, targets: [SocketAddress], tls: [UpstreamTLSTarget?] = [], config: GatewayConfig, live: LiveObjects,
        maxConnections: Int = 0, scratch: LoopScratch? = nil
    ) {
        self.eventLoop = eventLoop
        self.scratch = scratch
        self.tls = tls
        self.live = live
        self.cap = ConnectionCap(limit: maxConnections, upstreams: targets.count, maxConnecting: config.pool.maxConnecting)
        self.targets = targets
        self.generations = Array(repeating: 0, count: targets.count)
        self.retired = Array(repeating: false, count: targets.count)
        self.idle = Array(repeating: [], count: targets.count)
        self.idlePolicy = IdleConnectionPolicy(maxIdlePerUpstream: 0, idleTimeout: .zero)
        self.connectTimeout = .zero
        self.requestIDs = RequestIDGenerator(seed: UInt64.random(in: .min ... .max))
        apply(config)
    }

    private func apply(_ config: GatewayConfig) {
        idlePolicy = IdleConnectionPolicy(
            maxIdlePerUpstream: config.pool.maxIdlePerUpstream, idleTimeout: config.pool.idleTimeout,
            maxRequests: config.pool.maxRequestsPerConnection, maxAge: config.pool.maxConnectionAge)
        connectTimeout = .nanoseconds(config.timeouts.connect.nanosecondsClamped)
    }

    /// A reload or a changed address (on this pool's loop, before the router may pick a
    /// new slot): targets for every slot, idle connections of retired slots, of slots
    /// whose address changed and of slots whose TLS context was built again closed (those
    /// in use are closed when released), pool settings and this loop's share of
    /// `pool.max_connections` as from now. Parked connections keep their deadlines.
    ///
    /// A reload builds the `https://` upstreams' context again from `upstream_tls` and its
    /// files, so their pooled connections go: every later request then uses the
    /// verification, CAs and client certificate just read — until 2026-12-07 a connection
    /// pooled before a reload that turned `verify` on, or renewed the client certificate,
    /// was reused for as long as traffic kept it from idling out (found renewing a
    /// client certificate by hand). An address refresh keeps the context, and the
    /// connections.
    func reconfigure(targets: [SocketAddress], tls: [UpstreamTLSTarget?] = [], retired: [Bool], config: GatewayConfig, maxConnections: Int) {
        apply(config)
        func context(_ targets: [UpstreamTLSTarget?], _ index: Int) -> AnyObject? { index < targets.count ? targets[index]?.context : nil }
        let moved = self.targets.indices.filter { index in
            index < targets.count && (self.targets[index] != targets[index] || context(self.tls, index) !== context(tls, index))
        }
        for upstream in moved { generations[upstream] &+= 1 }
        self.targets = targets
        self.tls = tls
        self.retired = retired
        while idle.count < targets.count { idle.append([]) }
        while generations.count < targets.count { generations.append(0) }
        cap.reconfigure(limit: maxConnections, upstreams: targets.count, maxConnecting: config.pool.maxConnecting)
        var closing: [UpstreamConnection] = []
        for upstream in retired.indices where retired[upstream] || moved.contains(upstream) {
            closing += idle[upstream]
            idle[upstream].removeAll()
        }
        for connection in closing {
            connection.idleDeadline = nil
            connection.close()
        }
    }

    /// Idle keep-alive connections parked now (for metrics).
    var idleConnections: Int { idle.reduce(0) { $0 + $1.count } }

    /// Connections closed at release by `pool.max_requests_per_connection` and
    /// `pool.max_connection_age`, by ``ConnectionReuse/Reason`` (for metrics).
    private(set) var retiredByBound = [Int](repeating: 0, count: ConnectionReuse.Reason.allCases.count)

    /// Requests waiting now, at the cap or behind the connects in progress (for metrics).
    var waitingForConnections: Int { waiters.count }

    /// The newest idle connection to `upstream` that is still open, if any.
    func takeIdle(_ upstream: Int) -> UpstreamConnection? {
        while let connection = idle[upstream].popLast() {
            connection.idleDeadline = nil
            if connection.isActive { return connection }
        }
        return nil
    }

    /// A request waited `timeouts.connect` at the connection cap: local congestion, not
    /// an upstream failure (no health penalty, no failover).
    struct WaitTimeout: Error {}

    /// A request waited `timeouts.connect` behind `pool.max_connecting` connects that
    /// did not finish (an upstream that drops SYNs): nothing was sent, so it may go to
    /// another upstream — as it would have after its own connect timed out — without a
    /// health penalty (the connects that hung count theirs).
    struct ConnectQueueTimeout: Error {}

    /// A new connection to `upstream` on this loop — at once, or, at the connection cap
    /// or behind `pool.max_connecting` connects, the next one released, freed or free to
    /// connect (a waiter gives up after the connect timeout).
    @discardableResult
    func connect(_ upstream: Int, _ completion: @escaping (Result<UpstreamConnection, any Error>) -> Void) -> CapWait? {
        let id = nextWaiterID
        nextWaiterID &+= 1
        let deadline = MonotonicTime(eventLoop.now + connectTimeout)
        switch cap.request(upstream, id: id, deadline: deadline) {
        case .connect:
            open(upstream, completion)
            return nil
        case .wait:
            waiters[id] = (upstream, completion)
            scheduleSweep()
            return CapWait(upstream: upstream, id: id)
        }
    }

    /// A waiting request ended: without this, a connection released or freed later
    /// went to it first, and thousands of departed waiters (a load generator's clients
    /// closing at once) passed each connection from one to the next.
    func cancelWait(_ wait: CapWait) {
        if cap.cancel(wait.upstream, id: wait.id) { waiters.removeValue(forKey: wait.id) }
    }

    private func open(_ upstream: Int, _ completion: @escaping (Result<UpstreamConnection, any Error>) -> Void) {
        let connection = UpstreamConnection(upstreamIndex: upstream, live: live, scratch: scratch)
        connection.generation = generations[upstream]
        connection.openedAt = MonotonicTime(eventLoop.now)
        connection.pool = self
        connection.countedByCap = true
        let handler = NIOLoopBound(connection, eventLoop: eventLoop)
        let pool = NIOLoopBound(self, eventLoop: eventLoop)
        let tls = upstream < self.tls.count ? self.tls[upstream] : nil
        let handshake = tls.map { _ in NIOLoopBound(UpstreamHandshake(done: eventLoop.makePromise()), eventLoop: eventLoop) }
        let connectTimeout = connectTimeout
        // A bootstrap per connect: its initializer captures this connection's handler.
        ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            // Receive buffers lent by the loop, per read (CompactRecvAllocator): a
            // pooled connection that once relayed a large body keeps none of it.
            .channelOption(.maxMessagesPerRead, value: scratch == nil ? UInt(4) : UInt(1))
            .channelOption(.recvAllocator, value: CompactRecvAllocator(initial: 2048, scratch: scratch))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls, let handshake {
                        try channel.pipeline.syncOperations.addHandler(tls.makeHandler())
                        try channel.pipeline.syncOperations.addHandler(handshake.value)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler.value)
                }
            }
            .connect(to: targets[upstream])
            // Completed on this pool's loop (the bootstrap's group is that loop).
            .assumeIsolated()
            .whenComplete { result in
                guard case .success(let channel) = result, let handshake else {
                    // A connect that failed before the pipeline existed (no descriptor)
                    // leaves the handshake's promise to be completed here.
                    if case .failure(let error) = result { handshake?.value.finish(.failure(error)) }
                    pool.value.connected(handler.value, upstream, result.map { _ in () }, completion)
                    return
                }
                // An `https://` upstream: connected once its handshake is done, within
                // a connect timeout of its own (UpstreamHandshake).
                let timer = channel.eventLoop.assumeIsolated().scheduleTask(in: connectTimeout) {
                    handshake.value.finish(.failure(ChannelError.connectTimeout(connectTimeout)))
                }
                handshake.value.done.futureResult.assumeIsolated().whenComplete { outcome in
                    timer.cancel()
                    if case .failure = outcome { channel.close(promise: nil) }
                    pool.value.connected(handler.value, upstream, outcome, completion)
                }
            }
    }

    /// A connect (and, for `https://`, its handshake) ended with `result`.
    private func connected(
        _ connection: UpstreamConnection, _ upstream: Int, _ result: Result<Void, any Error>,
        _ completion: (Result<UpstreamConnection, any Error>) -> Void
    ) {
        switch result {
        case .success:
            // NIO completes the connect before the handler hears `channelActive`:
            // a connection released at once (its exchange ended while it was
            // connecting) must count as open, or it is closed instead of parked.
            connection.connected()
        case .failure:
            forget(connection)
        }
        connectFinished(upstream)
        completion(result.map { _ in connection })
    }

    /// A connect finished: a waiter, if any, may start the next.
    private func connectFinished(_ upstream: Int) {
        openForWaiter(cap.connectFinished(upstream))
    }

    /// The cap let waiter `id` (if any) open a connection: it connects now.
    private func openForWaiter(_ id: Int?) {
        if let id, let waiter = waiters.removeValue(forKey: id) { open(waiter.upstream, waiter.completion) }
    }

    /// A connection stops counting against the cap (closed, or never connected); a
    /// waiter, if any, opens one in its place.
    private func forget(_ connection: UpstreamConnection) {
        guard connection.countedByCap else { return }
        connection.countedByCap = false
        openForWaiter(cap.closed(connection.upstreamIndex))
    }

    /// Whether `connection` was opened to the address its slot has now: a member whose
    /// address moved (``reconfigure(targets:tls:retired:config:maxConnections:)``)
    /// leaves its older connections stale.
    func isCurrent(_ connection: UpstreamConnection) -> Bool {
        connection.generation == generations[connection.upstreamIndex]
    }

    /// Parks a connection whose exchange ended cleanly, or closes it, as
    /// ``IdleConnectionPolicy/release(parked:retired:now:)`` says.
    func release(_ connection: UpstreamConnection, now: MonotonicTime) {
        connection.delegate = nil
        connection.servedRequests += 1
        // Closed, opened to an address its upstream no longer has, or past
        // `pool.max_requests_per_connection` / `max_connection_age`: not reused (the
        // close lets a waiter at the cap open a new one).
        guard connection.isActive, isCurrent(connection) else {
            connection.close()
            return
        }
        if let bound = idlePolicy.retirement(served: connection.servedRequests, openedAt: connection.openedAt, now: now) {
            retiredByBound[bound.rawValue] += 1
            connection.close()
            return
        }
        if let id = cap.released(connection.upstreamIndex), let waiter = waiters.removeValue(forKey: id) {
            // At the cap, a released connection goes straight to the first waiter.
            waiter.completion(.success(connection))
            return
        }
        let upstream = connection.upstreamIndex
        switch idlePolicy.release(parked: idle[upstream].count, retired: retired[upstream], now: now) {
        case .close:
            connection.close()
        case .park(let deadline):
            idle[upstream].append(connection)
            connection.idleDeadline = deadline
            scheduleSweep()
        }
    }

    /// One timer per pool, not per connection (``IdleConnectionPolicy``): while anything
    /// is parked or waiting, a sweep runs every ``IdleConnectionPolicy/sweepInterval`` and
    /// closes what is past its deadline.
    private func scheduleSweep() {
        guard sweepTimer == nil else { return }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let interval = TimeAmount.nanoseconds(idlePolicy.sweepInterval.nanosecondsClamped)
        sweepTimer = eventLoop.scheduleTask(in: interval) { bound.value.sweep() }
    }

    private func sweep() {
        sweepTimer = nil
        let now = MonotonicTime(eventLoop.now)
        var expired: [UpstreamConnection] = []
        for upstream in idle.indices {
            idle[upstream].removeAll { connection in
                guard let due = connection.idleDeadline, due <= now else { return false }
                expired.append(connection)
                return true
            }
        }
        // Closed after the lists are settled: closing calls back into connectionClosed.
        for connection in expired {
            connection.idleDeadline = nil
            connection.close()
        }
        let timedOut = cap.expire(now: now)
        for (upstream, id) in timedOut {
            let atCap = cap.limit > 0 && cap.open[upstream] >= cap.limit
            waiters.removeValue(forKey: id)?.completion(.failure(atCap ? WaitTimeout() : ConnectQueueTimeout()))
        }
        if idle.contains(where: { !$0.isEmpty }) || cap.hasWaiters { scheduleSweep() }
    }

    /// Any connection of this pool closed (busy or parked).
    func connectionClosed(_ connection: UpstreamConnection) {
        forget(connection)
        guard connection.idleDeadline != nil else { return }  // not parked
        connection.idleDeadline = nil
        if let index = idle[connection.upstreamIndex].firstIndex(where: { $0 === connection }) {
            idle[connection.upstreamIndex].remove(at: index)
        }
    }

    func closeAll() {
        sweepTimer?.cancel()
        sweepTimer = nil
        for connections in idle {
            for connection in connections { connection.close() }
        }
        idle = Array(repeating: [], count: targets.count)
    }

    func nextRequestID() -> RequestID { requestIDs.nextID() }

    /// A jitter factor in [0, 0.5) for `Retry-After` estimates.
    func nextJitter() -> Double { Double(requestIDs.next() >> 11) / Double(1 << 53) * 0.5 }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}
