import FluxgateCore
import Logging
import NIOCore
import Synchronization

/// Everything the data path needs, turned into typed values once per config load.
///
/// Immutable apart from the round-robin ticket, which is the one piece of state
/// shared across event loops: a relaxed atomic increment, no lock.
final class GatewayRuntime: Sendable {
    let config: GatewayConfig
    let admission: AdmissionConfig
    let upstreams: [UpstreamConfig]
    let targets: [SocketAddress]
    let balancer: RoundRobin
    /// `host:port` per upstream, for requests that arrive without `Host` (HTTP/1.0).
    let authorities: [String]
    let responses: GatewayResponses
    let gate: AdmissionGate
    /// `rate_limit.per_client.key: header:<Name>` → the header keying clients (else the address).
    let clientKeyHeader: String?
    private let ticket = Atomic<Int>(0)

    init(config: GatewayConfig, logger: Logger = Logger(label: "fluxgate"), now: MonotonicTime = .init(nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds))) throws {
        self.config = config
        self.admission = config.admission
        self.upstreams = config.effectiveUpstreams
        self.targets = try upstreams.map {
            try SocketAddress.makeAddressResolvingHost($0.url.endpoint.host, port: $0.url.endpoint.port)
        }
        self.balancer = RoundRobin(weights: upstreams.map(\.weight))
        self.authorities = upstreams.map { $0.url.endpoint.description }
        self.responses = GatewayResponses()
        // Every configured upstream counts as ready until health checks exist.
        let capacity = upstreams.reduce(0) { $0 + $1.maxConcurrency }
        let key = config.rateLimit.perClient.key
        self.clientKeyHeader = key.hasPrefix("header:") ? String(key.dropFirst("header:".count)) : nil
        self.gate = AdmissionGate(config: config, capacity: capacity, now: now, logger: logger)
    }

    /// The upstream for the next request.
    func pickUpstream() -> Int? {
        let value = ticket.wrappingAdd(1, ordering: .relaxed).oldValue
        return balancer.pick(value & Int.max)
    }
}
