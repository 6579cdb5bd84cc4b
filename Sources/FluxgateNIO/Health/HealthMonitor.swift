import FluxgateCore
import Logging
import NIOCore
import Synchronization

/// The shell around ``HealthBoard``: takes probe results (from ``HealthChecker``) and
/// exchange outcomes (from the data path), logs and counts every flip, and hands each
/// new plan to the ``UpstreamRouter``, which moves the schedule and capacity `C` at once.
///
/// The data path reports every exchange, so the common case must be nearly free: a
/// success costs one relaxed atomic load (is a failure streak running for any
/// upstream? then for this one?) and takes the lock only to end a streak. Failures take the lock; they
/// are rare, and the ejection decision needs the board.
final class HealthMonitor: Sendable {
    private let board: Mutex<(board: HealthBoard, panic: Bool, names: [String])>
    /// Upstreams whose refused ejection (the `max_ejection_percent` cap) has been logged
    /// since an upstream last came back; taken outside `board`'s lock, never inside it.
    private let cappedLogged = Mutex(Set<Int>())
    private let router: UpstreamRouter
    private let logger: Logger
    /// Per upstream slot: a passive failure streak is running (the success fast path's
    /// test). Allocated for every possible slot (``UpstreamSlots/maxSlots``) so that a
    /// reload adding upstreams never swaps an array the data path is reading.
    private let streaks: [Flag]
    /// How many of ``streaks`` are set, for ``anyFailureStreak``: one load that answers
    /// for every upstream, which the data path asks before it builds a success report.
    private let openStreaks = Atomic<Int>(0)
    /// Per upstream slot: flips to ready and to not ready, for metrics and tests.
    private let flipCounts: [FlipCount]
    /// Per upstream slot and failure kind (at `slot × kinds + kind`): failed exchanges,
    /// whether or not passive checks are on.
    private let failureCounts: [FailureCount]
    private static let failureKinds = UpstreamHealth.Failure.Kind.allCases

    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    private final class FlipCount: Sendable {
        let up = Atomic<Int>(0)
        let down = Atomic<Int>(0)
    }

    private final class FailureCount: Sendable {
        let value = Atomic<Int>(0)
    }

    private func failureCount(_ upstream: Int, _ kind: UpstreamHealth.Failure.Kind) -> FailureCount {
        failureCounts[upstream * Self.failureKinds.count + Self.failureKinds.firstIndex(of: kind)!]
    }

    init(names: [String], policy: HealthPolicy, router: UpstreamRouter, logger: Logger) {
        self.board = Mutex((HealthBoard(count: names.count, policy: policy), false, names))
        self.router = router
        self.logger = logger
        self.streaks = (0..<UpstreamSlots.maxSlots).map { _ in Flag() }
        self.flipCounts = (0..<UpstreamSlots.maxSlots).map { _ in FlipCount() }
        self.failureCounts = (0..<UpstreamSlots.maxSlots * Self.failureKinds.count).map { _ in FailureCount() }
    }

    /// A reload: the slots (names, weights, `max_concurrency`, retired ones out), the
    /// new policy, fresh slots starting over; everything else keeps its state. The
    /// router takes the new slots inside the board's lock, where every plan is made and
    /// applied, so no plan for the old slots can reach a router that has the new ones.
    func reconfigure(upstreams: [UpstreamSlot], policy: HealthPolicy, fresh: [Int], now: MonotonicTime) {
        for index in fresh { closeStreak(index) }
        cappedLogged.withLock { $0.removeAll() }
        let router = self.router
        update(now: now, forcePlan: true) { board in
            router.reconfigure(upstreams: upstreams)
            board.reconfigure(policy: policy, retired: upstreams.map(\.retired), fresh: fresh)
            return []
        } names: { $0 = upstreams.map(\.name) }
    }

    /// Slots the health checker probes: every one not retired.
    var liveSlots: [Int] { board.withLock { state in state.board.retired.indices.filter { !state.board.retired[$0] } } }

    var policy: HealthPolicy { board.withLock { $0.board.policy } }

    /// A reading of one upstream's state (for /stats and tests).
    func state(_ upstream: Int) -> UpstreamHealth { board.withLock { $0.board[upstream] } }

    /// Flips of `upstream` so far: (to ready, to not ready).
    func flips(_ upstream: Int) -> (up: Int, down: Int) {
        (flipCounts[upstream].up.load(ordering: .relaxed), flipCounts[upstream].down.load(ordering: .relaxed))
    }

    /// Failed exchanges with `upstream` so far, by kind.
    func failures(_ upstream: Int) -> [UpstreamHealth.Failure.Kind: Int] {
        Dictionary(uniqueKeysWithValues: Self.failureKinds.map { ($0, failureCount(upstream, $0).value.load(ordering: .relaxed)) })
    }

    // MARK: Events

    func probeSucceeded(_ upstream: Int, now: MonotonicTime) {
        update(now: now) { [($0.probeSucceeded(upstream, now: now), upstream)] }
    }

    func probeFailed(_ upstream: Int, _ failure: UpstreamHealth.Failure, now: MonotonicTime) {
        update(now: now) { [($0.probeFailed(upstream, failure, now: now), upstream)] }
    }

    /// An exchange with `upstream` got a response below 500. `current` as for
    /// ``exchangeFailed(_:_:now:current:)``: the old replica's success is not the new
    /// one's. Read only when a failure streak is open (off the common path).
    func exchangeSucceeded(_ upstream: Int, current: @autoclosure () -> Bool = true) {
        guard anyFailureStreak, streaks[upstream].value.load(ordering: .relaxed), current() else { return }
        board.withLock { state in
            state.board.exchangeSucceeded(upstream)
            closeStreak(upstream)
        }
    }

    /// Whether any upstream has a failure streak running: when none has (nearly
    /// always), a success has nothing to report — the data path asks this before it
    /// builds ``exchangeSucceeded(_:current:)``'s arguments (its `current` closure
    /// retained and released the exchange on every proxied request).
    @inline(__always) var anyFailureStreak: Bool { openStreaks.load(ordering: .relaxed) > 0 }

    private func closeStreak(_ upstream: Int) {
        if streaks[upstream].value.exchange(false, ordering: .relaxed) { openStreaks.wrappingSubtract(1, ordering: .relaxed) }
    }

    /// An exchange with `upstream` failed: connect failure, reset or timeout before the
    /// response, or a 5xx. `current` false: over a connection to an address the slot no
    /// longer has — counted in the metrics, not held against the slot's health.
    func exchangeFailed(_ upstream: Int, _ failure: UpstreamHealth.Failure, now: MonotonicTime, current: Bool = true) {
        failureCount(upstream, failure.kind).value.wrappingAdd(1, ordering: .relaxed)
        guard current else { return }
        if !streaks[upstream].value.exchange(true, ordering: .relaxed) { openStreaks.wrappingAdd(1, ordering: .relaxed) }
        var capped: (limit: Int, streak: Int, percent: Double)?
        update(now: now) { board in
            let before = board[upstream].ejectionsOverflowed
            let flip = board.exchangeFailed(upstream, failure, now: now)
            if board[upstream].ejectionsOverflowed > before {
                capped = (board.ejectionLimit, board[upstream].consecutiveFailures, board.policy.maxEjectionPercent)
            }
            return [(flip, upstream)]
        }
        // Logged once per upstream until an ejected one returns (a query of death can
        // refuse dozens a second); the counter has every one.
        if let capped, cappedLogged.withLock({ $0.insert(upstream).inserted }) {
            let name = board.withLock { upstream < $0.names.count ? $0.names[upstream] : "\(upstream)" }
            logger.warning(
                "upstream not ejected: max_ejection_percent reached",
                metadata: [
                    "upstream": "\(name)",
                    "reason": "\(capped.streak) failed requests in a row (last: \(failure))",
                    "ejected": "\(capped.limit)", "max_ejection_percent": "\(capped.percent)",
                    "logged": "once until an ejected upstream returns; fluxgate_upstream_ejections_overflow_total counts each",
                ])
        }
    }

    func setEnabled(_ upstream: Int, _ enabled: Bool, now: MonotonicTime) {
        update(now: now) { [($0.setEnabled(upstream, enabled, now: now), upstream)] }
    }

    /// Time passed: cool-downs end, slow-start ramps advance.
    func tick(now: MonotonicTime) {
        update(now: now, forcePlan: true) { board in board.tick(now: now).map { (Optional($0.1), $0.0) } }
    }

    /// When ``tick(now:)`` should run next, if anything is pending.
    func nextReview(now: MonotonicTime) -> MonotonicTime? {
        board.withLock { $0.board.nextReview(now: now) }
    }

    /// Runs `event` on the board; logs and counts its flips; re-plans when something
    /// flipped (or always, for ticks: a ramp step changes shares without a flip). The
    /// plan is applied inside the lock so plans reach the router in order.
    private func update(
        now: MonotonicTime, forcePlan: Bool = false, _ event: (inout HealthBoard) -> [(UpstreamHealth.Flip?, Int)],
        names rename: (inout [String]) -> Void = { _ in }
    ) {
        let (flips, panicChange, names): ([(Int, UpstreamHealth.Flip)], Bool?, [String]) = board.withLock { state in
            rename(&state.names)
            let flips = event(&state.board).compactMap { flip, index in flip.map { (index, $0) } }
            guard !flips.isEmpty || forcePlan else { return ([], nil, []) }
            let plan = state.board.plan(now: now)
            router.apply(plan)
            let change: Bool? = plan.panic != state.panic ? plan.panic : nil
            state.panic = plan.panic
            return (flips, change, flips.isEmpty ? [] : state.names)
        }
        if flips.contains(where: { $0.1.ready }) { cappedLogged.withLock { $0.removeAll() } }
        for (index, flip) in flips {
            if flip.ready {
                flipCounts[index].up.wrappingAdd(1, ordering: .relaxed)
                logger.notice(
                    "upstream up", metadata: ["upstream": "\(names[index])", "from": "down", "to": "up", "reason": "\(flip.reason)"])
            } else {
                flipCounts[index].down.wrappingAdd(1, ordering: .relaxed)
                logger.warning(
                    "upstream down", metadata: ["upstream": "\(names[index])", "from": "up", "to": "down", "reason": "\(flip.reason)"])
            }
        }
        if let panicChange {
            if panicChange {
                logger.error(
                    "panic: too many upstreams ejected; ignoring passive ejections and routing to every upstream the health checks call healthy",
                    metadata: ["panic_threshold": "\(policy.panicThreshold)"])
            } else {
                logger.notice("panic over: passive ejections apply again")
            }
        }
    }
}
