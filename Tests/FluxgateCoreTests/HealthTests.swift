import FluxgateCore
import Testing

/// The health decisions with a manual clock: every time below is exact.
struct UpstreamHealthTests {
    var policy: HealthPolicy {
        var policy = HealthPolicy()
        policy.rise = 2
        policy.fall = 3
        policy.consecutiveFailures = 3
        policy.baseEjection = .seconds(30)
        policy.maxEjection = .seconds(100)
        return policy
    }

    func at(_ seconds: Double) -> MonotonicTime { MonotonicTime(nanoseconds: Int64(seconds * 1e9)) }

    @Test func startsUpUnconfirmedAndOneFailedProbeTakesItDown() {
        var health = UpstreamHealth(policy: policy)
        #expect(health.isReady)
        #expect(health.unconfirmed)
        let flip = health.probeFailed(.refused, now: at(0))
        #expect(flip == .init(ready: false, reason: .probeFailed(.refused)))
        #expect(!health.isReady)
    }

    @Test func firstSuccessConfirmsWithoutAFlip() {
        var health = UpstreamHealth(policy: policy)
        #expect(health.probeSucceeded(now: at(0)) == nil)
        #expect(!health.unconfirmed)
        // Confirmed: now it takes `fall` failures.
        #expect(health.probeFailed(.timeout, now: at(2)) == nil)
        #expect(health.probeFailed(.timeout, now: at(4)) == nil)
        #expect(health.probeFailed(.status(500), now: at(6)) == .init(ready: false, reason: .probeFailed(.status(500))))
    }

    @Test func riseSuccessesInARowBringItBackAndAFailureResetsTheCount() {
        var health = UpstreamHealth(policy: policy)
        _ = health.probeFailed(.refused, now: at(0))
        #expect(health.probeSucceeded(now: at(2)) == nil)
        #expect(health.probeFailed(.refused, now: at(4)) == nil)  // already down: no flip
        #expect(health.probeSucceeded(now: at(6)) == nil)
        #expect(health.probeSucceeded(now: at(8)) == .init(ready: true, reason: .probesPassed(2)))
        #expect(health.readySince == at(8))
    }

    @Test func passiveFailuresEjectWithGrowingCoolDownsAndProbesDecideTheReturn() {
        var health = UpstreamHealth(policy: policy)
        _ = health.probeSucceeded(now: at(0))
        #expect(health.exchangeFailed(.reset, now: at(1)) == nil)
        health.exchangeSucceeded()  // a success ends the streak
        #expect(health.exchangeFailed(.reset, now: at(2)) == nil)
        #expect(health.exchangeFailed(.status(502), now: at(3)) == nil)
        let flip = health.exchangeFailed(.status(503), now: at(4))
        #expect(flip == .init(ready: false, reason: .ejected(.status(503), consecutive: 3, coolDown: .seconds(30))))
        #expect(health.ejectedUntil == at(34))
        // Probes keep passing during the cool-down, but the cool-down still holds.
        _ = health.probeSucceeded(now: at(10))
        _ = health.probeSucceeded(now: at(12))
        #expect(health.tick(now: at(33)) == nil)
        #expect(health.tick(now: at(34)) == .init(ready: true, reason: .ejectionEnded))

        // Second ejection: 60 s; and after it, two fresh probes are needed.
        for second in 40..<42 { _ = health.exchangeFailed(.reset, now: at(Double(second))) }
        #expect(health.exchangeFailed(.reset, now: at(42))?.ready == false)
        #expect(health.ejectedUntil == at(102))
        #expect(health.tick(now: at(102)) == nil)  // cool-down over, no probe passed since
        #expect(health.isEjected)
        _ = health.probeSucceeded(now: at(104))
        #expect(health.probeSucceeded(now: at(106)) == .init(ready: true, reason: .probesPassed(2)))

        // Third: 90 s; fourth would be 120 s, capped at max_ejection (100 s).
        for second in 110..<113 { _ = health.exchangeFailed(.reset, now: at(Double(second))) }
        #expect(health.ejectedUntil == at(202))
        _ = health.probeSucceeded(now: at(203))
        _ = health.probeSucceeded(now: at(204))
        _ = health.tick(now: at(205))
        #expect(health.isReady)
        for second in 210..<213 { _ = health.exchangeFailed(.reset, now: at(Double(second))) }
        #expect(health.ejectedUntil == at(312))
    }

    @Test func probesThatConfirmAnEjectionDecideTheReturnAlone() {
        var health = UpstreamHealth(policy: policy)
        _ = health.probeSucceeded(now: at(0))
        for second in 1...3 { _ = health.exchangeFailed(.refused, now: at(Double(second))) }
        #expect(health.ejectedUntil == at(33))
        for second in 4...6 { #expect(health.probeFailed(.refused, now: at(Double(second))) == nil) }
        #expect(health.ejectedUntil == nil)  // confirmed: now a probe-down upstream
        #expect(!health.isCandidate)
        _ = health.probeSucceeded(now: at(10))  // restarted
        #expect(health.probeSucceeded(now: at(11)) == .init(ready: true, reason: .probesPassed(2)))
        #expect(health.ejections == 1)  // the next ejection still lasts longer
    }

    @Test func aReplicaRestartedBeforeFallProbesIsBackAfterRiseProbes() {
        var health = UpstreamHealth(policy: policy)
        _ = health.probeSucceeded(now: at(0))
        for second in 1...3 { _ = health.exchangeFailed(.refused, now: at(Double(second))) }
        #expect(health.probeFailed(.refused, now: at(4)) == nil)  // one failed probe: below fall
        #expect(health.ejectedUntil == nil && health.isEjected)
        _ = health.probeSucceeded(now: at(6))  // restarted
        #expect(health.probeSucceeded(now: at(8)) == .init(ready: true, reason: .probesPassed(2)))  // not at 33
    }

    @Test func ejectionsAreForgottenAfterMaxEjectionOfHealth() {
        var health = UpstreamHealth(policy: policy)
        for second in 0..<3 { _ = health.exchangeFailed(.reset, now: at(Double(second))) }
        _ = health.probeSucceeded(now: at(10))
        _ = health.probeSucceeded(now: at(12))
        _ = health.tick(now: at(32))
        #expect(health.isReady && health.ejections == 1)
        _ = health.tick(now: at(131))
        #expect(health.ejections == 1)
        _ = health.tick(now: at(132))  // ready for 100 s = max_ejection
        #expect(health.ejections == 0)
        #expect(health.ejectionsTotal == 1)  // the metric's count is never forgotten
    }

    @Test func withoutActiveChecksTheCoolDownAloneEndsAnEjection() {
        var passiveOnly = policy
        passiveOnly.activeEnabled = false
        var health = UpstreamHealth(policy: passiveOnly)
        for second in 0..<3 { _ = health.exchangeFailed(.refused, now: at(Double(second))) }
        #expect(!health.isReady)
        #expect(health.tick(now: at(32)) == .init(ready: true, reason: .ejectionEnded))
    }

    @Test func passiveDisabledNeverEjects() {
        var off = policy
        off.passiveEnabled = false
        var health = UpstreamHealth(policy: off)
        for second in 0..<50 { #expect(health.exchangeFailed(.reset, now: at(Double(second))) == nil) }
        #expect(health.isReady)
    }

    @Test func theOperatorSwitchIsApartFromWhatWasObserved() {
        var health = UpstreamHealth(policy: policy)
        _ = health.probeSucceeded(now: at(0))
        #expect(health.setEnabled(false, now: at(1)) == .init(ready: false, reason: .disabled))
        _ = health.probeSucceeded(now: at(2))
        _ = health.probeSucceeded(now: at(3))
        #expect(!health.isReady)  // passing probes do not override the operator
        #expect(health.setEnabled(true, now: at(4)) == .init(ready: true, reason: .enabled))
    }

    @Test func slowStartRampsFromATenthToFull() {
        var ramping = policy
        ramping.slowStart = .seconds(30)
        var health = UpstreamHealth(policy: ramping)
        #expect(health.rampShare(now: at(0)) == 1)  // up since start: no ramp
        _ = health.probeFailed(.refused, now: at(0))
        _ = health.probeSucceeded(now: at(10))
        _ = health.probeSucceeded(now: at(12))
        #expect(health.rampShare(now: at(12)) == 0.1)
        #expect(health.rampShare(now: at(15)) == 0.1)
        #expect(health.rampShare(now: at(27)) == 0.5)
        #expect(health.rampShare(now: at(42)) == 1)
    }
}

struct HealthBoardTests {
    func at(_ seconds: Double) -> MonotonicTime { MonotonicTime(nanoseconds: Int64(seconds * 1e9)) }

    /// No ejection cap unless asked: the panic rule's cases eject most of the board.
    func board(_ count: Int, panic: Double = 0.5, cap: Double = 100, slowStart: Duration = .zero) -> HealthBoard {
        var policy = HealthPolicy()
        policy.consecutiveFailures = 1
        policy.maxEjectionPercent = cap
        policy.panicThreshold = panic
        policy.slowStart = slowStart
        return HealthBoard(count: count, policy: policy)
    }

    @Test func ejectingOneOfFourLeavesThree() {
        var board = board(4)
        _ = board.exchangeFailed(0, .reset, now: at(0))
        let plan = board.plan(now: at(0))
        #expect(plan.routed == [false, true, true, true])
        #expect(!plan.panic)
    }

    @Test func ejectingThreeOfFourPanicsAndRoutesToAllProbeHealthyOnes() {
        var board = board(4)
        for index in 0..<3 { _ = board.exchangeFailed(index, .reset, now: at(0)) }
        let plan = board.plan(now: at(0))
        #expect(plan.panic)
        #expect(plan.routed == [true, true, true, true])
    }

    @Test func probedDownUpstreamsStayOutEvenInPanic() {
        var board = board(4)
        _ = board.probeFailed(2, .refused, now: at(0))
        _ = board.probeFailed(3, .refused, now: at(0))
        _ = board.exchangeFailed(0, .reset, now: at(0))
        // Candidates 0 and 1; 1 of 2 left = 0.5, not below the threshold.
        #expect(board.plan(now: at(0)) == .init(routed: [false, true, false, false], share: [0, 1, 0, 0], panic: false))
        _ = board.exchangeFailed(1, .reset, now: at(0))
        #expect(board.plan(now: at(0)).routed == [true, true, false, false])
        #expect(board.plan(now: at(0)).panic)
    }

    @Test func theEjectionLimitIsAShareOfTheLiveUpstreamsButAlwaysOne() {
        #expect(board(2, cap: 10).ejectionLimit == 1)
        #expect(board(19, cap: 10).ejectionLimit == 1)
        #expect(board(25, cap: 10).ejectionLimit == 2)
        #expect(board(10, cap: 50).ejectionLimit == 5)
        #expect(board(3, cap: 100).ejectionLimit == 3)
        #expect(board(4, cap: 0).ejectionLimit == 1)
        var shrunk = board(20, cap: 10)
        shrunk.reconfigure(policy: shrunk.policy, retired: (0..<20).map { $0 >= 10 }, fresh: [])
        #expect(shrunk.ejectionLimit == 1)  // retired slots do not count
    }

    @Test func aStreakPastTheCapIsCountedAndEjectsOnceAPlaceIsFree() {
        var policy = HealthPolicy()
        policy.consecutiveFailures = 2
        policy.activeEnabled = false
        var board = HealthBoard(count: 3, policy: policy)  // default cap 10 %: one of three
        for second in 0..<2 { _ = board.exchangeFailed(0, .reset, now: at(Double(second))) }
        #expect(board[0].isEjected)
        #expect(board.exchangeFailed(1, .status(502), now: at(2)) == nil)
        #expect(board.exchangeFailed(1, .status(502), now: at(3)) == nil)  // would eject: refused
        #expect(board.exchangeFailed(1, .timeout, now: at(4)) == nil)
        #expect(board[1].ejectionsOverflowed == 2 && !board[1].isEjected && board[1].ejectionsTotal == 0)
        #expect(board.plan(now: at(4)).routed == [false, true, true])
        _ = board.tick(now: at(31))  // a's cool-down is over: a place is free
        #expect(board.exchangeFailed(1, .reset, now: at(32))?.ready == false)  // the streak is still open
        #expect(board.plan(now: at(32)).routed == [true, false, true])
        #expect(board[1].ejectionsTotal == 1)
    }

    @Test func refusedConnectsAloneEjectPastTheCap() {
        var board = board(3, cap: 10)
        _ = board.exchangeFailed(0, .refused, now: at(0))
        #expect(board.exchangeFailed(1, .refused, now: at(0))?.ready == false)  // nothing listens: no request did that
        #expect(board.exchangeFailed(2, .reset, now: at(0)) == nil)  // a reset could be the request's doing
        #expect(board[2].ejectionsOverflowed == 1)
        #expect(board.ejectedCount == 2)
    }

    @Test func aStreakOfRefusalsThatEndsInAResetIsCapped() {
        var policy = HealthPolicy()
        policy.consecutiveFailures = 2
        var board = HealthBoard(count: 2, policy: policy)
        _ = board.exchangeFailed(0, .refused, now: at(0))
        _ = board.exchangeFailed(0, .refused, now: at(0))
        _ = board.exchangeFailed(1, .refused, now: at(0))
        #expect(board.exchangeFailed(1, .reset, now: at(0)) == nil)
        board.exchangeSucceeded(1)  // a success ends the streak and its kind
        _ = board.exchangeFailed(1, .refused, now: at(1))
        #expect(board.exchangeFailed(1, .refused, now: at(1))?.ready == false)
    }

    @Test func everyUpstreamProbedDownRoutesNothing() {
        var board = board(2)
        _ = board.probeFailed(0, .refused, now: at(0))
        _ = board.probeFailed(1, .timeout, now: at(0))
        let plan = board.plan(now: at(0))
        #expect(plan.routed == [false, false])
        #expect(plan.capacity([5000, 5000]) == 0)
    }

    @Test func panicThresholdZeroNeverPanics() {
        var board = board(2, panic: 0)
        _ = board.exchangeFailed(0, .reset, now: at(0))
        _ = board.exchangeFailed(1, .reset, now: at(0))
        #expect(board.plan(now: at(0)).routed == [false, false])
    }

    @Test func slowStartScalesWeightAndCapacityAndSchedulesReviews() {
        var board = board(3, slowStart: .seconds(20))
        _ = board.probeFailed(2, .refused, now: at(0))
        _ = board.probeSucceeded(2, now: at(2))
        _ = board.probeSucceeded(2, now: at(4))
        let early = board.plan(now: at(4))
        #expect(early.share == [1, 1, 0.1])
        #expect(early.weights([1, 1, 1]) == [10, 10, 1])
        #expect(early.capacity([1000, 1000, 1000]) == 2100)
        #expect(board.nextReview(now: at(4)) == at(6))  // tenths of slow_start
        let half = board.plan(now: at(14))
        #expect(half.weights([1, 1, 1]) == [10, 10, 5])
        #expect(half.capacity([1000, 1000, 1000]) == 2500)
        let done = board.plan(now: at(24))
        #expect(done.weights([1, 1, 1]) == [1, 1, 1])
        #expect(done.capacity([1000, 1000, 1000]) == 3000)
        #expect(board.nextReview(now: at(24)) == nil)
    }

    @Test func coolDownEndsAreReviewsAndTicksReportTheirFlips() {
        var policy = HealthPolicy()
        policy.consecutiveFailures = 1
        policy.activeEnabled = false
        var board = HealthBoard(count: 2, policy: policy)
        _ = board.exchangeFailed(1, .reset, now: at(5))
        #expect(board.nextReview(now: at(5)) == at(35))
        #expect(board.tick(now: at(34)).isEmpty)
        let flips = board.tick(now: at(35))
        #expect(flips.count == 1 && flips[0].0 == 1 && flips[0].1 == .init(ready: true, reason: .ejectionEnded))
    }
}

struct RetryBudgetTests {
    func at(_ ms: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: ms * 1_000_000) }

    /// Only the concurrency rule: no request admitted, so the volume rule has nothing.
    func take(_ budget: inout RetryBudget, _ inFlight: Int) -> Bool { budget.start(inFlight: inFlight, admitted: 0, now: at(0)) }

    /// How many of `wanted` retries asked at once the budget allows.
    func taken(_ wanted: Int, _ budget: inout RetryBudget, inFlight: Int, admitted: Int, now: MonotonicTime) -> Int {
        (0..<wanted).reduce(0) { count, _ in count + (budget.start(inFlight: inFlight, admitted: admitted, now: now) ? 1 : 0) }
    }

    @Test func budgetIsAShareOfInFlightWithAFloor() {
        let budget = RetryBudget(percent: 20, minimum: 3, now: at(0))
        #expect(budget.limit(inFlight: 0) == 3)
        #expect(budget.limit(inFlight: 10) == 3)
        #expect(budget.limit(inFlight: 100) == 20)
        #expect(budget.limit(inFlight: 5000) == 1000)
    }

    @Test func exhaustedBudgetRefusesUntilARetryFinishes() {
        var budget = RetryBudget(percent: 20, minimum: 3, now: at(0))
        #expect(take(&budget, 10))
        #expect(take(&budget, 10))
        #expect(take(&budget, 10))
        #expect(!take(&budget, 10))
        #expect(take(&budget, 20))  // more in flight, more budget: 4
        #expect(!take(&budget, 20))
        budget.finish()
        #expect(take(&budget, 20))
    }

    @Test func zeroBudgetNeverRetries() {
        var budget = RetryBudget(percent: 0, minimum: 0, now: at(0))
        #expect(taken(1, &budget, inFlight: 1_000_000, admitted: 1_000_000, now: at(1_000)) == 0)
    }

    /// A crash: 1 000 requests/s for 10 s, 30 in flight, a third of them (10) cut off
    /// in one instant. The concurrency rule allows 6 at once; the volume rule (20 % of
    /// about 1 000 requests in the last second) the other 4.
    @Test func aBurstSmallBesideTheTrafficIsRetriedWhole() {
        var budget = RetryBudget(percent: 20, minimum: 3, now: at(0))
        #expect(taken(10, &budget, inFlight: 30, admitted: 10_000, now: at(10_000)) == 10)
        #expect(budget.active == 10)
        // Without the traffic behind it, only the concurrency rule's 6.
        var quiet = RetryBudget(percent: 20, minimum: 3, now: at(0))
        #expect(taken(10, &quiet, inFlight: 30, admitted: 0, now: at(10_000)) == 6)
    }

    /// 1 000 requests/s for 10 s, all answered; then every answer fails and each asks
    /// for a retry that ends at once (so the concurrency rule, floor 0 here, never
    /// holds one). The first second retries the fifth of a second's traffic the budget
    /// held plus a fifth of its own; after that, one retry per five requests — never
    /// the load times two.
    @Test func whenEverythingFailsRetriesStayAShareOfTheRequests() {
        var budget = RetryBudget(percent: 20, minimum: 0, now: at(0))
        var admitted = 10_000
        var (firstSecond, after) = (0, 0)
        for step in 1...1_000 {  // 10 ms steps of 10 requests
            admitted += 10
            for _ in 0..<10 where budget.start(inFlight: 0, admitted: admitted, now: at(10_000 + Int64(step) * 10)) {
                if step <= 100 { firstSecond += 1 } else { after += 1 }
                budget.finish()
            }
        }
        #expect((300...400).contains(firstSecond), "\(firstSecond)")
        #expect((1_700...1_850).contains(after), "\(after) of 9 000")
    }

    /// The budget is read only when a retry is wanted: requests admitted over a quiet
    /// minute are spread over it, not counted as if they had all just come.
    @Test func requestsSeenLateAreSpreadOverTheTimeTheyTook() {
        var budget = RetryBudget(percent: 20, minimum: 0, now: at(0))
        // 6 000 requests over 60 s (100/s): about 100 in the last second, so 20 retries.
        let allowed = taken(100, &budget, inFlight: 0, admitted: 6_000, now: at(60_000))
        #expect((19...21).contains(allowed), "\(allowed)")
    }

    /// A reload keeps the retries running and the recent counts, with the new settings.
    @Test func aReloadCarriesTheBudgetOver() {
        var budget = RetryBudget(percent: 20, minimum: 3, now: at(0))
        #expect(taken(1, &budget, inFlight: 0, admitted: 1_000, now: at(1_000)) == 1)
        let reloaded = RetryBudget(percent: 50, minimum: 1, carrying: budget)
        #expect(reloaded.active == 1 && reloaded.percent == 50 && reloaded.minimum == 1)
        #expect(reloaded.recentRequests == budget.recentRequests && reloaded.recentRetries == budget.recentRetries)
    }
}

struct ExchangeLifecycleTests {
    func at(_ ms: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: ms * 1_000_000) }

    @Test func aProxiedExchangeWalksEveryPhaseAndEndsOnce() {
        var life = ExchangeLifecycle(now: at(0))
        life.queued(now: at(1))
        #expect(life.phase == .queued)
        life.admitted(now: at(31))
        life.connecting(upstream: 2)
        #expect(life.phase == .connecting(upstream: 2))
        life.forwarding()
        life.responseHeadSent()
        #expect(life.responseStarted)
        let outcome = life.finish(.proxied(status: 200), now: at(81))
        #expect(
            outcome == .init(
                end: .proxied(status: 200), upstream: 2, retries: 0, queueWait: .milliseconds(30),
                upstreamTime: .milliseconds(50), total: .milliseconds(81)))
        #expect(life.finish(.clientGone, now: at(90)) == nil)  // exactly once
    }

    @Test func failoverAndRetriesAreCountedAndTheLastUpstreamNamed() {
        var life = ExchangeLifecycle(now: at(0))
        life.admitted(now: at(0))
        life.connecting(upstream: 0)   // refused
        life.connecting(upstream: 1)   // 503, retried
        life.forwarding()
        life.connecting(upstream: 2)
        life.forwarding()
        let outcome = life.finish(.proxied(status: 200), now: at(10))
        #expect(outcome?.retries == 2)
        #expect(outcome?.upstream == 2)
    }

    @Test func aShedNeverAdmittedHasNoUpstreamTimeAndItsQueueWait() {
        var life = ExchangeLifecycle(now: at(0))
        life.queued(now: at(5))
        let outcome = life.finish(.shed(.queueTimeout), now: at(1005))
        #expect(outcome?.queueWait == .milliseconds(1000))
        #expect(outcome?.upstreamTime == nil)
        #expect(outcome?.upstream == nil)
    }

    @Test func onceTheResponseStartedNoNewAttemptBegins() {
        var life = ExchangeLifecycle(now: at(0))
        life.connecting(upstream: 0)
        life.forwarding()
        life.responseHeadSent()
        life.connecting(upstream: 1)
        #expect(life.phase == .relaying(upstream: 0))
        #expect(life.finish(.cutOff, now: at(1))?.retries == 0)
    }
}
