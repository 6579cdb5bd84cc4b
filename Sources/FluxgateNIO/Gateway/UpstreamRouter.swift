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

    private let gate: AdmissionGate
    /// Told which upstreams a plan took out of rotation, after the plan is in place
    /// (the server gives their requests' slots back: ``UpstreamSlotHolders``).
    private let leftRotation = Mutex<(@Sendable ([Int]) -> Void)?>(nil)
    private let ticket = Atomic<Int>(0)
    private let state: Mutex<State>
    private let version = Atomic<Int>(0)

    private struct State {
        var version: Int
        var balancer: RoundRobin
        var capacity: Int
        /// Per upstream slot, as configured (a reload changes them).
        var weights: [Int]
        var maxConcurrency: [Int]
    }

    init(upstreams: [UpstreamSlot], gate: AdmissionGate) {
        let weights = upstreams.map(\.weight)
        let maxConcurrency = upstreams.map { $0.retired ? 0 : $0.maxConcurrency }
        self.gate = gate
        let balancer = RoundRobin(weights: weights, ready: upstreams.map { !$0.retired })
        self.state = Mutex(State(version: 0, balancer: balancer, capacity: maxConcurrency.reduce(0, +), weights: weights, maxConcurrency: maxConcurrency))
    }

    /// A reload changed weights, `max_concurrency` or the slots; the next
    /// ``apply(_:jitter:)`` (the health monitor re-plans at once) uses them.
    func reconfigure(upstreams: [UpstreamSlot]) {
        state.withLock { state in
            state.weights = upstreams.map(\.weight)
            state.maxConcurrency = upstreams.map { $0.retired ? 0 : $0.maxConcurrency }
        }
    }

    /// The routing a new connection starts with.
    var routing: Routing {
        state.withLock { Routing(version: $0.version, balancer: $0.balancer) }
    }

    /// Per upstream: whether it is in the schedule now.
    var routed: [Bool] { state.withLock { $0.balancer.ready } }

    func onLeftRotation(_ handler: @escaping @Sendable ([Int]) -> Void) {
        leftRotation.withLock { $0 = handler }
    }

    /// The upstream for the next request, from the routed ones.
    func pick(_ routing: inout Routing) -> Int? {
        refresh(&routing)
        let value = ticket.wrappingAdd(1, ordering: .relaxed).oldValue
        return routing.balancer.pick(value & Int.max)
    }

    /// `balancer: least_requests`: the less loaded of the schedule's next two picks.
    func pick(_ routing: inout Routing, leastLoaded load: (Int) -> Int) -> Int? {
        refresh(&routing)
        let value = ticket.wrappingAdd(1, ordering: .relaxed).oldValue
        return routing.balancer.pick(value & Int.max, leastLoaded: load)
    }

    /// The next routed upstream to try after `tried` ones failed.
    func failover(_ routing: inout Routing, after current: Int, tried: [Int]) -> Int? {
        refresh(&routing)
        return routing.balancer.failover(after: current, tried: Set(tried))
    }

    /// The routed upstream after `current` in index order (`current` itself when it is the
    /// only one; nil when none is routed). Allocates nothing (``ProxyHandler/withRoom(_:)``
    /// may ask on every request while an upstream holds its share).
    func nextRouted(_ routing: inout Routing, after current: Int) -> Int? {
        refresh(&routing)
        return routing.balancer.failover(after: current, tried: [])
    }

    private func refresh(_ routing: inout Routing) {
        if version.load(ordering: .acquiring) != routing.version { routing = self.routing }
    }

    /// Routes by `plan`: the schedule over its routed upstreams with their slow-start
    /// weights, and capacity `C` = their scaled `max_concurrency` (docs/ARCHITECTURE.md,
    /// "Health"). Nothing changes (no version bump) when the plan gives the same result.
    func apply(_ plan: HealthBoard.Plan, jitter: Double = Double.random(in: 0..<1)) {
        let left: [Int] = state.withLock { state in
            let balancer = RoundRobin(weights: plan.weights(state.weights), ready: plan.routed)
            let capacity = plan.capacity(state.maxConcurrency)
            guard state.balancer != balancer || state.capacity != capacity else { return [] }
            let wasReady = state.balancer.ready
            let left = wasReady.indices.filter { wasReady[$0] && !(($0 < balancer.ready.count) && balancer.ready[$0]) }
            state.balancer = balancer
            state.version += 1
            version.store(state.version, ordering: .releasing)
            if state.capacity != capacity {
                state.capacity = capacity
                gate.setCapacity(capacity, jitter: jitter)
            }
            return left
        }
        if !left.isEmpty, let handler = leftRotation.withLock({ $0 }) { handler(left) }
    }
}
