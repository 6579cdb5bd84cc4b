import FluxgateCore
import NIOCore
import Synchronization

/// Which upstream serves the next request, shared by every event loop.
///
/// Immutable per health plan: the round-robin schedule over the routed upstreams is
/// rebuilt when the plan changes (a flip, a slow-start step) and each connection keeps
/// the schedule it last saw in a ``Routing``, refreshing it only when the version
/// number moved — one atomic load per request. The round-robin ticket is a relaxed
/// atomic increment, no lock. Applying a plan also resizes the admission capacity `C`
/// under the same lock, so two changes reach the gate in the order they were made.
final class UpstreamRouter: Sendable {
    /// A connection's view of which upstreams can be picked.
    struct Routing {
        fileprivate(set) var version: Int
        fileprivate(set) var balancer: RoundRobin
    }

    private let weights: [Int]
    private let maxConcurrency: [Int]
    private let gate: AdmissionGate
    private let ticket = Atomic<Int>(0)
    private let state: Mutex<(version: Int, balancer: RoundRobin, capacity: Int)>
    private let version = Atomic<Int>(0)

    init(upstreams: [UpstreamConfig], gate: AdmissionGate) {
        self.weights = upstreams.map(\.weight)
        self.maxConcurrency = upstreams.map(\.maxConcurrency)
        self.gate = gate
        let capacity = maxConcurrency.reduce(0, +)
        self.state = Mutex((0, RoundRobin(weights: weights), capacity))
    }

    /// The routing a new connection starts with.
    var routing: Routing {
        state.withLock { Routing(version: $0.version, balancer: $0.balancer) }
    }

    /// Per upstream: whether it is in the schedule now.
    var routed: [Bool] { state.withLock { $0.balancer.ready } }

    /// The upstream for the next request, from the routed ones.
    func pick(_ routing: inout Routing) -> Int? {
        refresh(&routing)
        let value = ticket.wrappingAdd(1, ordering: .relaxed).oldValue
        return routing.balancer.pick(value & Int.max)
    }

    /// The next routed upstream to try after `tried` ones failed.
    func failover(_ routing: inout Routing, after current: Int, tried: [Int]) -> Int? {
        refresh(&routing)
        return routing.balancer.failover(after: current, tried: Set(tried))
    }

    private func refresh(_ routing: inout Routing) {
        if version.load(ordering: .acquiring) != routing.version { routing = self.routing }
    }

    /// Routes by `plan`: the schedule over its routed upstreams with their slow-start
    /// weights, and capacity `C` = their scaled `max_concurrency` (docs/ARCHITECTURE.md,
    /// "Health"). Nothing changes (no version bump) when the plan gives the same result.
    func apply(_ plan: HealthBoard.Plan, jitter: Double = Double.random(in: 0..<1)) {
        let balancer = RoundRobin(weights: plan.weights(weights), ready: plan.routed)
        let capacity = plan.capacity(maxConcurrency)
        state.withLock { state in
            guard state.balancer != balancer || state.capacity != capacity else { return }
            state.balancer = balancer
            state.version += 1
            version.store(state.version, ordering: .releasing)
            if state.capacity != capacity {
                state.capacity = capacity
                gate.setCapacity(capacity, jitter: jitter)
            }
        }
    }
}
