/// Every upstream's ``UpstreamHealth`` and the decision that follows from all of them:
/// which upstreams take traffic, with what weight and what share of capacity `C`.
///
/// Two rules keep passive ejection, which acts on evidence from real traffic, from
/// turning a bad request mix — a query of death that crashes or resets whichever replica
/// it reaches — into an outage:
///
/// The ejection cap (Envoy's `max_ejection_percent`): at most ``ejectionLimit``
/// upstreams are ejected at once; a further upstream whose streak reaches the threshold
/// stays in and the refusal is counted (unless its streak was refused connects only,
/// which no request causes).
///
/// The panic rule (Envoy's `healthy_panic_threshold`), for when ejections and probes
/// together leave few: if ejections would leave fewer than `panicThreshold` of the
/// upstreams the probes call healthy, the board ignores ejections and routes to all of those — a degraded
/// service instead of a self-inflicted outage — and says so (`panic` in the plan, a
/// log line from the shell). Upstreams the probes see down are out either way: with
/// every upstream down the answer is 503 `no_healthy_upstream`.
///
/// | upstreams probed up | ejected (cap 100 %) | panic threshold 0.5 | routed to |
/// |---------------------|---------------------|---------------------|-----------|
/// | 4                   | 1                   | 3/4 ≥ 0.5           | 3         |
/// | 4                   | 3                   | 1/4 < 0.5: panic    | 4         |
/// | 2 (2 probed down)   | 1                   | 1/2 ≥ 0.5           | 1         |
/// | 0                   | —                   | —                   | none: 503 |
public struct HealthBoard: Sendable, Equatable {
    public private(set) var upstreams: [UpstreamHealth]
    public private(set) var policy: HealthPolicy
    /// Per upstream slot: removed by a reload (never routed, never a candidate).
    public private(set) var retired: [Bool]

    /// What the data path should do now.
    public struct Plan: Sendable, Equatable {
        /// Per upstream: takes traffic.
        public var routed: [Bool]
        /// Per upstream: share of its weight and `max_concurrency` (slow start), in (0, 1].
        public var share: [Double]
        /// Ejections are being ignored because too few upstreams would be left.
        public var panic: Bool

        public init(routed: [Bool], share: [Double], panic: Bool) {
            self.routed = routed
            self.share = share
            self.panic = panic
        }
    }

    public init(count: Int, policy: HealthPolicy) {
        self.policy = policy
        self.upstreams = Array(repeating: UpstreamHealth(policy: policy), count: count)
        self.retired = Array(repeating: false, count: count)
    }

    /// A reload: `retired.count` slots from now on (more than before when upstreams
    /// were added), those marked retired out of every plan, the `fresh` ones (new or
    /// revived slots) starting over as at start-up; every other slot keeps its state
    /// under the new `policy`.
    public mutating func reconfigure(policy: HealthPolicy, retired: [Bool], fresh: [Int]) {
        self.policy = policy
        while upstreams.count < retired.count { upstreams.append(UpstreamHealth(policy: policy)) }
        for index in fresh where index < upstreams.count { upstreams[index] = UpstreamHealth(policy: policy) }
        for index in upstreams.indices { upstreams[index].updatePolicy(policy) }
        self.retired = retired
    }

    public subscript(index: Int) -> UpstreamHealth { upstreams[index] }

    public mutating func probeSucceeded(_ index: Int, now: MonotonicTime) -> UpstreamHealth.Flip? {
        upstreams[index].probeSucceeded(now: now)
    }

    public mutating func probeFailed(_ index: Int, _ failure: UpstreamHealth.Failure, now: MonotonicTime) -> UpstreamHealth.Flip? {
        upstreams[index].probeFailed(failure, now: now)
    }

    public mutating func exchangeSucceeded(_ index: Int) {
        upstreams[index].exchangeSucceeded()
    }

    /// A failed exchange; it may eject the upstream only while fewer than
    /// ``ejectionLimit`` upstreams are ejected (or it is out already).
    public mutating func exchangeFailed(_ index: Int, _ failure: UpstreamHealth.Failure, now: MonotonicTime) -> UpstreamHealth.Flip? {
        let mayEject = upstreams[index].isEjected || ejectedCount < ejectionLimit
        return upstreams[index].exchangeFailed(failure, now: now, mayEject: mayEject)
    }

    /// Upstreams (not retired) passively ejected now, whether cooling down or waiting
    /// for their probes.
    public var ejectedCount: Int {
        upstreams.indices.reduce(0) { $0 + (!retired[$1] && upstreams[$1].isEjected ? 1 : 0) }
    }

    /// The most upstreams passive ejection may hold out at once: `maxEjectionPercent` of
    /// those configured (not retired), rounded down, but at least one (Envoy's
    /// `max_ejection_percent`, default 10 %: one of up to 19).
    ///
    /// | upstreams | 10 % (default) | 50 % | 100 % |
    /// |-----------|----------------|------|-------|
    /// | 2         | 1              | 1    | 2     |
    /// | 3         | 1              | 1    | 3     |
    /// | 10        | 1              | 5    | 10    |
    /// | 25        | 2              | 12   | 25    |
    public var ejectionLimit: Int {
        let live = retired.reduce(0) { $0 + ($1 ? 0 : 1) }
        return max(1, Int((policy.maxEjectionPercent / 100 * Double(live)).rounded(.down)))
    }

    public mutating func setEnabled(_ index: Int, _ enabled: Bool, now: MonotonicTime) -> UpstreamHealth.Flip? {
        upstreams[index].setEnabled(enabled, now: now)
    }

    /// Ends cool-downs that are over; returns the flips, by upstream index.
    public mutating func tick(now: MonotonicTime) -> [(Int, UpstreamHealth.Flip)] {
        upstreams.indices.compactMap { index in upstreams[index].tick(now: now).map { (index, $0) } }
    }

    public func plan(now: MonotonicTime) -> Plan {
        let ready = upstreams.indices.map { !retired[$0] && upstreams[$0].isReady }
        let candidates = upstreams.indices.map { !retired[$0] && upstreams[$0].isCandidate }
        let candidateCount = candidates.filter { $0 }.count
        let readyCount = ready.filter { $0 }.count
        let panic = candidateCount > 0 && policy.panicThreshold > 0
            && Double(readyCount) < policy.panicThreshold * Double(candidateCount)
        let routed = panic ? candidates : ready
        let share = upstreams.indices.map { routed[$0] ? upstreams[$0].rampShare(now: now) : 0 }
        return Plan(routed: routed, share: share, panic: panic)
    }

    /// The earliest moment the plan can change without a new event: a cool-down's end,
    /// or the next slow-start step (the ramp is followed in tenths of `slow_start`).
    public func nextReview(now: MonotonicTime) -> MonotonicTime? {
        var next = upstreams.compactMap(\.nextDeadline).min()
        if policy.slowStart > .zero, upstreams.contains(where: { $0.isReady && $0.rampShare(now: now) < 1 }) {
            let step = now + policy.slowStart / 10
            next = min(next ?? step, step)
        }
        return next
    }
}

extension HealthBoard.Plan {
    /// Round-robin weights for the plan: the configured ones, scaled by each upstream's
    /// slow-start share. While any upstream ramps, weights count in tenths so that a
    /// share of 0.1 of weight 1 is still a place in the schedule.
    ///
    /// | configured | share        | weights |
    /// |------------|--------------|---------|
    /// | 1, 1, 1    | 1, 1, 1      | 1, 1, 1 |
    /// | 1, 1, 1    | 1, 1, 0.5    | 10, 10, 5 |
    /// | 2, 1       | 0.1, 1       | 2, 10 |
    public func weights(_ configured: [Int]) -> [Int] {
        let ramping = zip(routed, share).contains { $0 && $1 < 1 }
        return configured.indices.map { index in
            guard routed[index], ramping else { return configured[index] }
            return max(1, Int((Double(configured[index] * 10) * share[index]).rounded()))
        }
    }

    /// Capacity `C`: the routed upstreams' `max_concurrency`, each scaled by its share
    /// (at least 1 for a routed upstream).
    public func capacity(_ maxConcurrency: [Int]) -> Int {
        maxConcurrency.indices.reduce(0) { sum, index in
            guard routed[index] else { return sum }
            return sum + max(1, Int((Double(maxConcurrency[index]) * share[index]).rounded(.down)))
        }
    }
}
