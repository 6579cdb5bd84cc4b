import FluxgateCore
import Logging
import NIOCore
import Synchronization

/// Everything the data path shares, across event loops and across reloads.
///
/// The typed values of the current configuration are one immutable
/// ``GatewaySettings`` (swapped whole by a reload, version number beside it); the
/// shared state lives in long-lived parts, each behind its own atomic or short lock,
/// and is reconfigured in place by a reload so that nothing in flight is lost:
/// admission (``AdmissionGate``: slots held and waiters stay), which upstreams take
/// traffic (``UpstreamRouter``, driven by ``HealthMonitor``: health of unchanged
/// upstreams stays), and the retry budget.
final class GatewayRuntime: Sendable {
    private let current: Mutex<GatewaySettings>
    /// The current settings' version: what a connection compares with its own copy.
    let settingsVersion: Atomic<Int>
    let responses: GatewayResponses
    let gate: AdmissionGate
    let router: UpstreamRouter
    let health: HealthMonitor
    /// Cluster mode's lease and token keeper (nil on a single gateway).
    let cluster: ClusterAgent?
    /// Retries in progress against `retry.budget_percent` of in-flight.
    private let retry: Mutex<(budget: RetryBudget, enabled: Bool)>
    /// Live connection and request objects, for leak checks (``LiveObjects``).
    let live = LiveObjects()
    /// Upgraded connections open now, and reserved by upgrade requests in flight
    /// (`limits.max_tunnels`).
    let tunnels = Atomic<Int>(0)
    /// Upgraded connections opened since start.
    let tunnelsOpened = Atomic<Int>(0)
    /// Admin connections at the admin listener's cap: idle ones closed to make room for
    /// a new one, and new ones answered 503 because every open one was being answered.
    let adminConnectionsEvicted = Atomic<Int>(0)
    let adminConnectionsRefused = Atomic<Int>(0)
    /// `limits.max_connections` in force (the automatic value resolved), for `/metrics`.
    let clientConnectionLimit = Atomic<Int>(0)
    /// The disk spooled request bodies may take (`limits.request_spool_bytes`), shared
    /// by every event loop (``BodySpool`` reserves and releases through the runtime).
    private let spool: Mutex<SpoolBudget>

    /// Reserves a tunnel place for an upgrade request; false at `limits.max_tunnels`.
    func reserveTunnel(max: Int) -> Bool {
        let now = tunnels.add(1, ordering: .relaxed).newValue
        if now <= max { return true }
        tunnels.subtract(1, ordering: .relaxed)
        return false
    }

    func releaseTunnel() { tunnels.subtract(1, ordering: .relaxed) }
    let accessLog: AccessLog
    private let reloadCounts = Mutex(ReloadCounts())
    private let drainFlag = Atomic<Bool>(false)
    private let exhaustionLog = LogThrottle()
    private let spoolLog = LogThrottle()
    private let invalidResponseLog = LogThrottle()
    let logger: Logger

    typealias Routing = UpstreamRouter.Routing

    init(
        config: GatewayConfig, logger: Logger = Logger(label: "fluxgate"),
        now: MonotonicTime = .current, clusterLoop: (any EventLoop)? = nil
    ) throws {
        let (settings, _) = try GatewaySettings.resolve(config, version: 1, previous: nil)
        self.current = Mutex(settings)
        self.settingsVersion = Atomic(1)
        self.logger = logger
        self.responses = GatewayResponses()
        self.gate = AdmissionGate(config: config, capacity: settings.fullCapacity, now: now, logger: logger)
        self.router = UpstreamRouter(upstreams: settings.upstreams, gate: gate)
        let gate = self.gate
        self.cluster = config.cluster.enabled ? try clusterLoop.map { try ClusterAgent(config: config, gate: gate, loop: $0, logger: logger) } : nil
        self.health = HealthMonitor(
            names: settings.upstreams.map(\.name), policy: config.healthCheck.policy, router: router, logger: logger)
        self.retry = Mutex((RetryBudget(percent: config.retry.budgetPercent, minimum: config.retry.minConcurrent, now: now), config.retry.enabled))
        self.accessLog = try AccessLog(config: config.accessLog, logger: logger)
        self.spool = Mutex(SpoolBudget(limit: settings.spoolBytes))
    }

    var settings: GatewaySettings { current.withLock { $0 } }
    var config: GatewayConfig { settings.config }

    /// The routing a new connection starts with.
    var routing: Routing { router.routing }

    /// The upstream for the next request, from the ready ones.
    func pickUpstream(_ routing: inout Routing) -> Int? { router.pick(&routing) }

    /// `balancer: least_requests`, with `load` the requests in flight per upstream (the
    /// caller's event loop's own count, as Envoy's per-worker balancers).
    func pickUpstream(_ routing: inout Routing, leastLoaded load: (Int) -> Int) -> Int? {
        router.pick(&routing, leastLoaded: load)
    }

    /// The next ready upstream to try after a failure.
    func failover(_ routing: inout Routing, after current: Int, tried: [Int]) -> Int? {
        router.failover(&routing, after: current, tried: tried)
    }

    /// The operator's switch for one upstream (and the tests' way to take one out):
    /// capacity `C` and the schedule follow at once.
    func setReady(_ upstream: Int, _ ready: Bool) {
        health.setEnabled(upstream, ready, now: MonotonicTime.current)
    }

    var retriesEnabled: Bool { retry.withLock { $0.enabled } }

    /// Takes a place in the retry budget; false when retries are off or the budget is spent.
    func startRetry() -> Bool {
        let now = MonotonicTime.current
        let load = gate.snapshot(at: now)
        return retry.withLock { $0.enabled && $0.budget.start(inFlight: load.inFlight, admitted: load.admitted, now: now) }
    }

    func finishRetry() {
        retry.withLock { $0.budget.finish() }
    }

    /// Reserves `bytes` of the spool budget for one body; false when it has not that much free.
    func reserveSpool(_ bytes: Int) -> Bool { spool.withLock { $0.reserve(bytes) } }

    func releaseSpool(_ bytes: Int) { spool.withLock { $0.release(bytes) } }

    /// The spool budget now (reserved and limit), for metrics and `/stats`.
    var spoolReading: SpoolBudget { spool.withLock { $0 } }

    /// An upstream connect (or a spool file) failed for want of a local resource: logged at most once a
    /// second (under descriptor exhaustion it fails for every request).
    func noteLocalExhaustion(_ error: any Error, now: MonotonicTime) {
        guard exhaustionLog.allow(now: now) else { return }
        logger.error(
            "cannot open upstream connections or request spool files: the gateway is out of a local resource; answering 503 (raise the descriptor limit, e.g. ulimit -n / LimitNOFILE)",
            metadata: ["error": "\(StartupProblems.reason(error))"])
    }

    /// A request body could not be spooled: logged at most once a second (a full disk
    /// fails every spooled request alike).
    func noteSpoolFailure(_ error: any Error, now: MonotonicTime) {
        guard spoolLog.allow(now: now) else { return }
        logger.error(
            "cannot spool a request body; answering 500 (check limits.request_spool_dir's free space, or set limits.request_spool_bytes: 0 to stream bodies instead)",
            metadata: ["error": "\(StartupProblems.reason(error))", "directory": "\(settings.spoolDirectory)"])
    }

    /// An upstream's response broke HTTP/1.1 (the client got a 502, or its response was
    /// cut off) or had bytes after its end (delivered; the connection retired): logged at
    /// most once a second, as a broken upstream does it to every request. Each one is in
    /// the access log's `detail`; the refused ones also in
    /// `fluxgate_upstream_failures_total{kind="malformed"}`.
    func noteInvalidResponse(upstream: String, problem: String, requestID: RequestID, now: MonotonicTime) {
        guard invalidResponseLog.allow(now: now) else { return }
        logger.warning(
            "upstream sent an invalid response",
            metadata: ["upstream": "\(upstream)", "problem": "\(problem)", "request_id": "\(requestID)"])
    }

    // MARK: Reload and drain

    /// Settings for `config` as a reload would install them, without installing them.
    /// Throws ``ReloadError`` for a change that needs a restart or an address that
    /// does not resolve.
    func prepare(_ config: GatewayConfig) throws -> (GatewaySettings, UpstreamSlots.Assignment) {
        let old = settings
        let restartOnly = old.config.restartOnlyDifferences(config)
        guard restartOnly.isEmpty else { throw ReloadError.needsRestart(restartOnly) }
        if let problem = StartupProblems.accessLogProblem(config.accessLog) { throw ReloadError.invalid(["\(problem)"]) }
        do {
            return try GatewaySettings.resolve(config, version: old.version + 1, previous: old)
        } catch {
            // Each names its key: "upstream http://…: host … does not resolve", "tls: cannot load …".
            throw ReloadError.invalid(["\(error)"])
        }
    }

    /// Makes `settings` current. The pools must already know every slot in it (the
    /// server updates them first): settings are published before the router may pick a
    /// new slot, so a connection that meets an unknown slot finds it by refreshing.
    func install(_ settings: GatewaySettings, _ assignment: UpstreamSlots.Assignment, now: MonotonicTime) {
        current.withLock { $0 = settings }
        settingsVersion.store(settings.version, ordering: .releasing)
        let config = settings.config
        retry.withLock {
            $0 = (RetryBudget(percent: config.retry.budgetPercent, minimum: config.retry.minConcurrent, carrying: $0.budget),
                config.retry.enabled)
        }
        gate.reconfigure(config: config, now: now)
        health.reconfigure(upstreams: settings.upstreams, policy: config.healthCheck.policy, fresh: assignment.fresh, now: now)
        accessLog.reconfigure(config.accessLog)
        spool.withLock { $0.limit = settings.spoolBytes }
    }

    var reloads: ReloadCounts { reloadCounts.withLock { $0 } }

    func countReload(success: Bool) {
        reloadCounts.withLock { success ? ($0.success += 1) : ($0.error += 1) }
    }

    var draining: Bool { drainFlag.load(ordering: .relaxed) }

    func startDraining() { drainFlag.store(true, ordering: .relaxed) }
}

/// Why a reload was refused; the old configuration stays.
public enum ReloadError: Error, CustomStringConvertible, Sendable {
    /// Keys only a restart can change (listeners, event loops, cluster mode, the embedded demo).
    case needsRestart([String])
    /// The file is not a valid configuration: every problem, with its key path.
    case invalid([String])

    public var description: String {
        switch self {
        case .needsRestart(let keys):
            "\(keys.joined(separator: ", ")): changed, but only a restart applies \(keys.count == 1 ? "it" : "them"); nothing was reloaded"
        case .invalid(let problems): problems.joined(separator: "\n")
        }
    }
}
