import FluxgateCore
import NIOCore
import Synchronization

/// Everything the data path needs, turned into typed values once per config load.
///
/// Immutable apart from the round-robin ticket, which is the one piece of state
/// shared across event loops: a relaxed atomic increment, no lock.
final class GatewayRuntime: Sendable {
    let config: GatewayConfig
    let upstreams: [UpstreamConfig]
    let targets: [SocketAddress]
    let balancer: RoundRobin
    /// `host:port` per upstream, for requests that arrive without `Host` (HTTP/1.0).
    let authorities: [String]
    let responses: GatewayResponses
    private let ticket = Atomic<Int>(0)

    init(config: GatewayConfig) throws {
        self.config = config
        self.upstreams = config.effectiveUpstreams
        self.targets = try upstreams.map {
            try SocketAddress.makeAddressResolvingHost($0.url.endpoint.host, port: $0.url.endpoint.port)
        }
        self.balancer = RoundRobin(weights: upstreams.map(\.weight))
        self.authorities = upstreams.map { $0.url.endpoint.description }
        self.responses = GatewayResponses()
    }

    /// The upstream for the next request.
    func pickUpstream() -> Int? {
        let value = ticket.wrappingAdd(1, ordering: .relaxed).oldValue
        return balancer.pick(value & Int.max)
    }
}
