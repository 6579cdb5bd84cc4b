import FluxgateCore
import Logging
import NIOCore
import Synchronization

/// Everything the data path needs, turned into typed values once per config load.
///
/// Immutable apart from the shared state of its parts, each behind its own atomic or
/// short lock: admission (``AdmissionGate``), which upstreams take traffic
/// (``UpstreamRouter``, driven by ``HealthMonitor``), and the retry budget.
final class GatewayRuntime: Sendable {
    let config: GatewayConfig
    let admission: AdmissionConfig
    let upstreams: [UpstreamConfig]
    let targets: [SocketAddress]
    /// `host:port` per upstream, for requests that arrive without `Host` (HTTP/1.0).
    let authorities: [String]
    let responses: GatewayResponses
    let gate: AdmissionGate
    let router: UpstreamRouter
    let health: HealthMonitor
    /// Retries in progress against `retry.budget_percent` of in-flight.
    private let retryBudget: Mutex<RetryBudget>
    let retriesEnabled: Bool
    /// `rate_limit.per_client.key: header:<Name>` → the header keying clients (else the address).
    let clientKeyHeader: String?
    /// Live connection and request objects, for leak checks (``LiveObjects``).
    let live = LiveObjects()
    /// Exchanges by how they ended.
    let outcomes = ExchangeOutcomes()

    typealias Routing = UpstreamRouter.Routing

    init(config: GatewayConfig, logger: Logger = Logger(label: "fluxgate"), now: MonotonicTime = .init(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))) throws {
        self.config = config
        self.admission = config.admission
        self.upstreams = config.effectiveUpstreams
        self.targets = try upstreams.map {
            try SocketAddress.makeAddressResolvingHost($0.url.endpoint.host, port: $0.url.endpoint.port)
        }
        self.authorities = upstreams.map { $0.url.endpoint.description }
        self.responses = GatewayResponses()
        let capacity = upstreams.reduce(0) { $0 + $1.maxConcurrency }
        let key = config.rateLimit.perClient.key
        self.clientKeyHeader = key.hasPrefix("header:") ? String(key.dropFirst("header:".count)) : nil
        self.gate = AdmissionGate(config: config, capacity: capacity, now: now, logger: logger)
        self.router = UpstreamRouter(upstreams: upstreams, gate: gate)
        self.health = HealthMonitor(names: upstreams.map(\.name), policy: config.healthCheck.policy, router: router, logger: logger)
        self.retryBudget = Mutex(RetryBudget(percent: config.retry.budgetPercent, minimum: config.retry.minConcurrent))
        self.retriesEnabled = config.retry.enabled
    }

    /// The routing a new connection starts with.
    var routing: Routing { router.routing }

    /// The upstream for the next request, from the ready ones.
    func pickUpstream(_ routing: inout Routing) -> Int? { router.pick(&routing) }

    /// The next ready upstream to try after a failure.
    func failover(_ routing: inout Routing, after current: Int, tried: [Int]) -> Int? {
        router.failover(&routing, after: current, tried: tried)
    }

    /// The operator's switch for one upstream (and the tests' way to take one out):
    /// capacity `C` and the schedule follow at once.
    func setReady(_ upstream: Int, _ ready: Bool) {
        health.setEnabled(upstream, ready, now: MonotonicTime(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds)))
    }

    /// Takes a place in the retry budget; false when retries are off or the budget is spent.
    func startRetry() -> Bool {
        guard retriesEnabled else { return false }
        let inFlight = gate.snapshot.inFlight
        return retryBudget.withLock { $0.start(inFlight: inFlight) }
    }

    func finishRetry() {
        retryBudget.withLock { $0.finish() }
    }
}
