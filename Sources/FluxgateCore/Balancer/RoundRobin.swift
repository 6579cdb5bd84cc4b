/// Smooth weighted round-robin, as nginx's upstream module does it, precomputed.
///
/// Each step adds every upstream's weight to its running score, picks the highest
/// score and subtracts the total weight from the winner. The sequence repeats after
/// `sum(weights)` picks, so it is computed once per upstream-set change and a pick is
/// `schedule[ticket % count]`: no lock, no shared mutable state beyond the caller's
/// ticket counter. Equal weights degenerate to plain round-robin.
///
/// | weights   | one period      |
/// |-----------|-----------------|
/// | 1, 1, 1   | 0 1 2           |
/// | 5, 1, 1   | 0 0 1 0 2 0 0   |
/// | 2, 1      | 0 1 0           |
/// | 1, 1, 1 with 1 not ready | 0 2 |
///
/// Upstreams that are not ready take no part: the schedule is the smooth order of the
/// ready ones (indices still into the full list), and failover skips the others.
public struct RoundRobin: Sendable, Equatable {
    /// Indices into the upstream list, one period of the smooth weighted order.
    public let schedule: [Int]
    public let upstreamCount: Int
    /// Per upstream: whether it may be picked.
    public let ready: [Bool]

    public init(weights: [Int], ready: [Bool]? = nil) {
        precondition(weights.allSatisfy { $0 > 0 }, "weights must be positive")
        let ready = ready ?? Array(repeating: true, count: weights.count)
        precondition(ready.count == weights.count, "one readiness flag per upstream")
        upstreamCount = weights.count
        self.ready = ready
        let effective = zip(weights, ready).map { $1 ? $0 : 0 }
        guard effective.contains(where: { $0 > 0 }) else {
            schedule = []
            return
        }
        let divisor = effective.reduce(0) { Self.gcd($0, $1) }
        let reduced = effective.map { $0 / divisor }
        let total = reduced.reduce(0, +)
        var current = Array(repeating: 0, count: reduced.count)
        var order: [Int] = []
        order.reserveCapacity(total)
        for _ in 0..<total {
            var best = 0
            for index in reduced.indices {
                current[index] += reduced[index]
                if current[index] > current[best] { best = index }
            }
            current[best] -= total
            order.append(best)
        }
        schedule = order
    }

    /// The upstream for the `ticket`-th request (tickets may be any integer).
    @inlinable
    public func pick(_ ticket: Int) -> Int? {
        guard !schedule.isEmpty else { return nil }
        let index = ticket % schedule.count
        return schedule[index < 0 ? index + schedule.count : index]
    }

    /// `balancer: least_requests`: of the `ticket`-th and the next pick of the schedule,
    /// the one with fewer requests in flight (`load`), the first on a tie — two choices,
    /// as Envoy's `LEAST_REQUEST` and HAProxy's `leastconn` aim for, so a replica that
    /// hangs (its requests pile up) or slows down stops being picked long before health
    /// checks take it out. Weights and slow start still shape the candidates; one
    /// ticket per request, so on ties the picks go round as with round-robin.
    @inlinable
    public func pick(_ ticket: Int, leastLoaded load: (Int) -> Int) -> Int? {
        guard let first = pick(ticket) else { return nil }
        guard let second = pick(ticket &+ 1), second != first else { return first }
        return load(second) < load(first) ? second : first
    }

    /// The upstream to try after `failed` ones: the next ready index in list order that
    /// has not been tried, so a connect failure walks every ready upstream once before
    /// giving up.
    public func failover(after current: Int, tried: Set<Int>) -> Int? {
        guard upstreamCount > 0 else { return nil }
        for step in 1...upstreamCount {
            let candidate = (current + step) % upstreamCount
            if ready[candidate] && !tried.contains(candidate) { return candidate }
        }
        return nil
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        b == 0 ? a : gcd(b, a % b)
    }
}
