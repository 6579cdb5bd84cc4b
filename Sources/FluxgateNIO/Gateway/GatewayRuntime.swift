import FluxgateCore
import Logging
import NIOCore
import Synchronization

/// Everything the data path needs, turned into typed values once per config load.
///
/// Immutable apart from two pieces of state shared across event loops: the
/// round-robin ticket (a relaxed atomic increment, no lock) and which upstreams are
/// ready. Readiness changes rarely; each connection keeps the balancer it last saw in
/// a ``Routing`` and refreshes it only when the version number moved, so the
/// per-request cost is one atomic load.
final class GatewayRuntime: Sendable {
    let config: GatewayConfig
    let admission: AdmissionConfig
    let upstreams: [UpstreamConfig]
    let targets: [SocketAddress]
    /// `host:port` per upstream, for requests that arrive without `Host` (HTTP/1.0).
    let authorities: [String]
    let responses: GatewayResponses
    let gate: AdmissionGate
    /// `rate_limit.per_client.key: header:<Name>` → the header keying clients (else the address).
    let clientKeyHeader: String?
    /// Live connection and request objects, for leak checks (``LiveObjects``).
    let live = LiveObjects()
    private let ticket = Atomic<Int>(0)
    private let readiness: Mutex<(version: Int, balancer: RoundRobin)>
    private let readinessVersion = Atomic<Int>(0)

    /// A connection's view of which upstreams can be picked.
    struct Routing {
        fileprivate(set) var version: Int
        fileprivate(set) var balancer: RoundRobin
    }

    init(config: GatewayConfig, logger: Logger = Logger(label: "fluxgate"), now: MonotonicTime = .init(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))) throws {
        self.config = config
        self.admission = config.admission
        self.upstreams = config.effectiveUpstreams
        self.targets = try upstreams.map {
            try SocketAddress.makeAddressResolvingHost($0.url.endpoint.host, port: $0.url.endpoint.port)
        }
        self.authorities = upstreams.map { $0.url.endpoint.description }
        self.responses = GatewayResponses()
        // Every configured upstream starts ready; `setReady` takes them out and back.
        let capacity = upstreams.reduce(0) { $0 + $1.maxConcurrency }
        self.readiness = Mutex((0, RoundRobin(weights: upstreams.map(\.weight))))
        let key = config.rateLimit.perClient.key
        self.clientKeyHeader = key.hasPrefix("header:") ? String(key.dropFirst("header:".count)) : nil
        self.gate = AdmissionGate(config: config, capacity: capacity, now: now, logger: logger)
    }

    /// The routing a new connection starts with.
    var routing: Routing {
        readiness.withLock { Routing(version: $0.version, balancer: $0.balancer) }
    }

    /// The upstream for the next request, from the ready ones.
    func pickUpstream(_ routing: inout Routing) -> Int? {
        refresh(&routing)
        let value = ticket.wrappingAdd(1, ordering: .relaxed).oldValue
        return routing.balancer.pick(value & Int.max)
    }

    /// The next ready upstream to try after a connect failure.
    func failover(_ routing: inout Routing, after current: Int, tried: [Int]) -> Int? {
        refresh(&routing)
        return routing.balancer.failover(after: current, tried: Set(tried))
    }

    private func refresh(_ routing: inout Routing) {
        if readinessVersion.load(ordering: .acquiring) != routing.version { routing = self.routing }
    }

    /// Takes an upstream out of rotation or puts it back. Capacity `C` follows at once
    /// (SPEC §4): the sum of `max_concurrency` over the ready upstreams. Health checks
    /// call this; so can tests.
    func setReady(_ upstream: Int, _ ready: Bool, jitter: Double = Double.random(in: 0..<1)) {
        readiness.withLock { state in
            guard state.balancer.ready[upstream] != ready else { return }
            var flags = state.balancer.ready
            flags[upstream] = ready
            state.balancer = RoundRobin(weights: upstreams.map(\.weight), ready: flags)
            state.version += 1
            readinessVersion.store(state.version, ordering: .releasing)
            // Inside the lock so two changes reach the gate in the order they were made.
            let capacity = zip(upstreams, flags).reduce(0) { $0 + ($1.1 ? $1.0.maxConcurrency : 0) }
            gate.setCapacity(capacity, jitter: jitter)
        }
    }
}
