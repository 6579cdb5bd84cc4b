import Testing

@testable import FluxgateCore

func ms(_ value: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: value * 1_000_000) }

struct TokenBucketTests {
    @Test func burstThenRate() {
        var bucket = TokenBucket(rate: 10, burst: 3, now: ms(0))
        #expect(bucket.take(now: ms(0)) == .allowed(remaining: 2))
        #expect(bucket.take(now: ms(0)) == .allowed(remaining: 1))
        #expect(bucket.take(now: ms(0)) == .allowed(remaining: 0))
        #expect(bucket.take(now: ms(0)) == .denied(retryAfter: .milliseconds(100)))
        #expect(bucket.take(now: ms(50)) == .denied(retryAfter: .milliseconds(50)))
        #expect(bucket.take(now: ms(100)) == .allowed(remaining: 0))
        #expect(bucket.available(now: ms(10_000)) == 3)  // never above burst
    }

    /// A refund gives back one token and never lifts the bucket above its burst.
    @Test func refundGivesBackATokenUpToTheBurst() {
        var bucket = TokenBucket(rate: 1, burst: 2, now: ms(0))
        _ = bucket.take(now: ms(0))
        _ = bucket.take(now: ms(0))
        bucket.refund()
        #expect(bucket.take(now: ms(0)) == .allowed(remaining: 0))
        bucket.refund()
        bucket.refund()
        bucket.refund()
        #expect(bucket.available(now: ms(0)) == 2)
    }

    @Test(arguments: [(10.0, Duration.milliseconds(100)), (1000, .milliseconds(1)), (0.5, .seconds(2)), (3, .nanoseconds(333_333_334))])
    func retryAfterIsTheTimeToTheNextToken(rate: Double, expected: Duration) {
        var bucket = TokenBucket(rate: rate, burst: 1, now: ms(0))
        _ = bucket.take(now: ms(0))
        #expect(bucket.take(now: ms(0)) == .denied(retryAfter: expected))
    }

    @Test(arguments: [
        (Duration.milliseconds(1), 0.0, 1), (.milliseconds(1200), 0, 2), (.seconds(2), 0.5, 3), (.seconds(10), 0.25, 13),
        (.zero, 0, 1),
    ])
    func retryAfterSeconds(wait: Duration, jitter: Double, expected: Int) {
        #expect(RetryAfter.seconds(wait, jitter: jitter) == expected)
    }
}

struct KeyedLimiterTests {
    @Test func keysHaveTheirOwnBuckets() {
        var limiter = KeyedLimiter<String>(rate: 1, burst: 1, capacity: 10)
        #expect(limiter.take("a", now: ms(0)) == .allowed(remaining: 0))
        #expect(limiter.take("a", now: ms(0)) == .denied(retryAfter: .seconds(1)))
        #expect(limiter.take("b", now: ms(0)) == .allowed(remaining: 0))
        #expect(limiter.take("a", now: ms(1000)) == .allowed(remaining: 0))
    }

    @Test func leastRecentlyUsedIsEvicted() {
        var limiter = KeyedLimiter<String>(rate: 1, burst: 1, capacity: 3)
        for key in ["a", "b", "c"] { _ = limiter.take(key, now: ms(0)) }
        _ = limiter.take("a", now: ms(0))  // a is now the most recent
        _ = limiter.take("d", now: ms(0))  // evicts b
        #expect(limiter.keysByRecency == ["c", "a", "d"])
        #expect(limiter.evictions == 1)
        // b comes back with a full bucket: eviction forgets, it never blocks.
        #expect(limiter.take("b", now: ms(0)) == .allowed(remaining: 0))
        #expect(limiter.keysByRecency == ["a", "d", "b"])
    }

    /// A flood of one million distinct keys never holds more than the bound.
    @Test func millionDistinctKeysStayWithinTheBound() {
        var limiter = KeyedLimiter<Int>(rate: 100, burst: 10, capacity: 1000)
        for key in 0..<1_000_000 { _ = limiter.take(key, now: ms(Int64(key / 1000))) }
        #expect(limiter.count == 1000)
        #expect(limiter.evictions == 999_000)
        #expect(limiter.keysByRecency.first == 999_000)
        #expect(limiter.keysByRecency.last == 999_999)
    }
}

struct AdmissionControllerTests {
    @Test func shedReasonIndexIsItsPlaceInAllCases() {
        for (place, reason) in ShedReason.allCases.enumerated() { #expect(reason.index == place, "\(reason)") }
    }

    func controller(capacity: Int, utilization: Double = 0.5, timeout: Duration = .seconds(1), discipline: AdmissionController.Discipline = .fifo)
        -> AdmissionController
    {
        AdmissionController(
            capacity: capacity,
            settings: .init(targetUtilization: utilization, queueTimeout: timeout, discipline: discipline, shedAt: [.low: 0.8, .normal: 1, .critical: 1]))
    }

    @Test(arguments: [(5000, 0.67, 3350, 1650), (15000, 0.67, 10050, 4950), (100, 0.5, 50, 50), (3, 0.67, 2, 1), (1, 0.5, 1, 0)])
    func slotsAndQueue(capacity: Int, utilization: Double, slots: Int, queue: Int) {
        let c = controller(capacity: capacity, utilization: utilization)
        #expect(c.slots == slots)
        #expect(c.queueLimit == queue)
    }

    /// Cluster mode: the queue is this replica's part of C − S by the share it is due,
    /// not by its grant — a replica whose grant the others' running requests still hold
    /// queues for those slots and admits as they reach it, instead of shedding.
    @Test func aReplicaShortOfItsDueShareQueuesForIt() {
        var c = controller(capacity: 30, utilization: 2.0 / 3.0)  // S = 20, queue 10
        _ = c.setShare(.init(slots: 0, base: 20, due: 10))
        #expect(c.slots == 0 && c.dueSlots == 10 && c.queueLimit == 5)
        for id in 1...5 { #expect(c.arrive(id: id, priority: .normal, now: ms(0)) == .enqueue(deadline: ms(1000))) }
        #expect(c.arrive(id: 6, priority: .normal, now: ms(0)) == .reject(.overloaded))
        #expect(c.setShare(.init(slots: 3, base: 20, due: 10)) == (admitted: [1, 2, 3], rejected: []))
        #expect(c.setShare(.init(slots: 10, base: 20)) == (admitted: [4, 5], rejected: []))
        // Granted what it was due: as before, the queue follows the grant.
        _ = c.setShare(.init(slots: 4, base: 20))
        #expect(c.queueLimit == 2)
        // An upgrade's successor queues for the slots its predecessor still holds too.
        _ = c.setShare(.init(slots: 0, base: 20, due: 10, inTransit: 20))
        #expect(c.queueLimit == 25)
        _ = c.setCapacity(15)  // an upstream went down: S = 10, everything scales by half
        #expect(c.slots == 0 && c.dueSlots == 5 && c.queueLimit == 3 + 10)
    }

    @Test func admitQueueRejectInOrder() {
        var c = controller(capacity: 4)  // 2 slots, 2 queued
        #expect(c.arrive(id: 1, priority: .normal, now: ms(0)) == .admit)
        #expect(c.arrive(id: 2, priority: .normal, now: ms(0)) == .admit)
        #expect(c.arrive(id: 3, priority: .normal, now: ms(10)) == .enqueue(deadline: ms(1010)))
        #expect(c.arrive(id: 4, priority: .normal, now: ms(20)) == .enqueue(deadline: ms(1020)))
        #expect(c.arrive(id: 5, priority: .normal, now: ms(30)) == .reject(.overloaded))
        #expect(c.utilization == 1)
        #expect(c.release(serviceTime: .milliseconds(100)) == [3])  // FIFO
        #expect(c.inFlight == 2)
        #expect(c.queued == 1)
        #expect(c.expire(now: ms(1019)) == [])
        #expect(c.expire(now: ms(1020)) == [4])
        #expect(c.release(serviceTime: nil) == [])
        #expect(c.inFlight == 1)
    }

    @Test func lifoServesTheNewestWaiter() {
        var c = controller(capacity: 4, discipline: .lifo)
        _ = c.arrive(id: 1, priority: .normal, now: ms(0))
        _ = c.arrive(id: 2, priority: .normal, now: ms(0))
        _ = c.arrive(id: 3, priority: .normal, now: ms(0))
        _ = c.arrive(id: 4, priority: .normal, now: ms(1))
        #expect(c.release(serviceTime: nil) == [4])
        #expect(c.expire(now: ms(1000)) == [3])
    }

    /// Position × per-slot service time beyond queue_timeout: refused at once.
    @Test func predictedWaitBeyondTheTimeoutIsRejectedAtOnce() {
        var c = controller(capacity: 20, utilization: 0.5, timeout: .milliseconds(100))  // 10 slots, 10 queued
        for id in 0..<10 { #expect(c.arrive(id: id, priority: .normal, now: ms(0)) == .admit) }
        _ = c.release(serviceTime: .milliseconds(400))  // mean 400 ms → a slot frees every 40 ms
        #expect(c.arrive(id: 10, priority: .normal, now: ms(0)) == .admit)
        #expect(c.arrive(id: 11, priority: .normal, now: ms(0)) == .enqueue(deadline: ms(100)))  // 40 ms
        #expect(c.arrive(id: 12, priority: .normal, now: ms(0)) == .enqueue(deadline: ms(100)))  // 80 ms
        #expect(c.arrive(id: 13, priority: .normal, now: ms(0)) == .reject(.overloaded))  // 120 ms > 100 ms
        #expect(c.drainEstimate == .milliseconds(120))
    }

    @Test func lowPriorityIsShedFirstAndCriticalServedFirst() {
        var c = controller(capacity: 10)  // 5 slots, 5 queued; low sheds at 8
        for id in 0..<5 { _ = c.arrive(id: id, priority: .normal, now: ms(0)) }
        #expect(c.arrive(id: 5, priority: .low, now: ms(0)) == .enqueue(deadline: ms(1000)))
        #expect(c.arrive(id: 6, priority: .normal, now: ms(0)) == .enqueue(deadline: ms(1000)))
        #expect(c.arrive(id: 7, priority: .critical, now: ms(0)) == .enqueue(deadline: ms(1000)))
        #expect(c.arrive(id: 8, priority: .low, now: ms(0)) == .reject(.overloaded))  // 8 of 10 used
        #expect(c.arrive(id: 9, priority: .normal, now: ms(0)) == .enqueue(deadline: ms(1000)))
        #expect(c.release(serviceTime: nil) == [7])
        #expect(c.release(serviceTime: nil) == [6])
        #expect(c.release(serviceTime: nil) == [9])
        #expect(c.release(serviceTime: nil) == [5])
    }

    @Test func capacityFollowsUpstreamHealth() {
        var c = controller(capacity: 8)  // 4 slots, 4 queued
        for id in 0..<8 { _ = c.arrive(id: id, priority: .normal, now: ms(0)) }
        // One of two upstreams goes down: C 8 → 4, 2 slots, 2 queued; the newest waiters go.
        let shrink = c.setCapacity(4)
        #expect(shrink.admitted == [])
        #expect(shrink.rejected == [7, 6])
        #expect(c.inFlight == 4)  // running requests finish; no new admission until below 2
        #expect(c.release(serviceTime: nil) == [])
        #expect(c.release(serviceTime: nil) == [])
        #expect(c.release(serviceTime: nil) == [4])
        #expect(c.setCapacity(0).rejected == [5])
        #expect(c.arrive(id: 9, priority: .critical, now: ms(0)) == .reject(.noHealthyUpstream))
        #expect(c.setCapacity(8).admitted == [])
    }

    @Test func cancelRemovesAWaiter() {
        var c = controller(capacity: 2)  // 1 slot, 1 queued
        _ = c.arrive(id: 1, priority: .normal, now: ms(0))
        _ = c.arrive(id: 2, priority: .normal, now: ms(0))
        let first = c.cancel(id: 2)
        let second = c.cancel(id: 2)
        #expect(first)
        #expect(!second)
        #expect(c.release(serviceTime: nil) == [])
    }
}

/// The standing-queue rule (CoDel's test on queue waits), on a manual clock.
struct StandingQueueTests {
    func controller(capacity: Int = 20, target: Duration = .milliseconds(5), interval: Duration = .milliseconds(100))
        -> AdmissionController
    {
        AdmissionController(
            capacity: capacity,
            settings: .init(
                targetUtilization: 0.5, queueTimeout: .seconds(1), shedAt: [.low: 1, .normal: 1, .critical: 1],
                queueDelayTarget: target, queueDelayInterval: interval))
    }

    /// Arrivals `ids` at `t` (with capacity 4: two run, two wait).
    func fill(_ c: inout AdmissionController, ids: Range<Int>, at t: Int64) {
        for id in ids { _ = c.arrive(id: id, priority: .normal, now: ms(t)) }
    }

    @Test func waitsAtTheTargetForAWholeIntervalMakeTheQueueStanding() {
        var c = controller(capacity: 4)
        fill(&c, ids: 0..<4, at: 0)  // 0, 1 run; 2, 3 wait
        #expect(c.release(serviceTime: nil, now: ms(10)) == [2])  // waited 10 ms ≥ 5: the clock starts
        #expect(!c.standing)
        _ = c.arrive(id: 4, priority: .normal, now: ms(10))
        #expect(c.release(serviceTime: nil, now: ms(109)) == [3])  // 99 ms above the target: not yet
        #expect(!c.standing)
        _ = c.arrive(id: 5, priority: .normal, now: ms(109))
        #expect(c.release(serviceTime: nil, now: ms(110)) == [4])  // 100 ms: standing
        #expect(c.standing)
        // Standing: a newcomer may wait only the target.
        #expect(c.arrive(id: 6, priority: .normal, now: ms(110)) == .enqueue(deadline: ms(115)))
    }

    @Test func oneShortWaitRestartsTheInterval() {
        var c = controller(capacity: 4)
        fill(&c, ids: 0..<4, at: 0)
        _ = c.release(serviceTime: nil, now: ms(10))  // 2 waited 10 ms
        _ = c.arrive(id: 4, priority: .normal, now: ms(60))
        _ = c.release(serviceTime: nil, now: ms(62))  // 3 waited 62 ms
        _ = c.arrive(id: 5, priority: .normal, now: ms(80))
        _ = c.release(serviceTime: nil, now: ms(81))  // 4 waited 21 ms
        _ = c.arrive(id: 6, priority: .normal, now: ms(90))
        _ = c.release(serviceTime: nil, now: ms(91))  // 5 waited 11 ms
        _ = c.arrive(id: 7, priority: .normal, now: ms(100))
        _ = c.release(serviceTime: nil, now: ms(102))  // 6 waited 12 ms
        _ = c.arrive(id: 8, priority: .normal, now: ms(105))
        #expect(c.release(serviceTime: nil, now: ms(106)) == [7])  // 7 waited 6 ms; 96 ms above target so far
        #expect(!c.standing)
        _ = c.arrive(id: 9, priority: .normal, now: ms(106))
        #expect(c.release(serviceTime: nil, now: ms(107)) == [8])  // 8 waited 2 ms: the clock is reset
        _ = c.arrive(id: 10, priority: .normal, now: ms(150))
        #expect(c.release(serviceTime: nil, now: ms(160)) == [9])  // 54 ms: above, clock restarts at 160
        _ = c.arrive(id: 11, priority: .normal, now: ms(200))
        #expect(c.release(serviceTime: nil, now: ms(230)) == [10])
        #expect(!c.standing)  // above since 160 only
    }

    @Test func anIntervalWithoutRefusalsEndsTheStandingQueue() {
        var c = controller(capacity: 4)
        fill(&c, ids: 0..<4, at: 0)
        _ = c.release(serviceTime: nil, now: ms(10))
        _ = c.arrive(id: 4, priority: .normal, now: ms(10))
        _ = c.release(serviceTime: nil, now: ms(200))
        #expect(c.standing)
        // A free slot with nobody waiting does not end it (completions come in bursts).
        #expect(c.release(serviceTime: nil, now: ms(201)) == [4])
        #expect(c.release(serviceTime: nil, now: ms(202)) == [])
        #expect(c.arrive(id: 5, priority: .normal, now: ms(203)) == .admit)
        #expect(c.standing)
        // A refusal within the interval keeps it standing…
        #expect(c.arrive(id: 6, priority: .normal, now: ms(250)) == .enqueue(deadline: ms(255)))
        #expect(c.expire(now: ms(255)) == [6])  // held to the target: counts as the rule acting
        _ = c.arrive(id: 7, priority: .normal, now: ms(270))  // waits (deadline 275)
        _ = c.arrive(id: 8, priority: .normal, now: ms(270))  // waits
        #expect(c.arrive(id: 9, priority: .normal, now: ms(280)) == .reject(.overloaded))  // queue full
        #expect(c.isStanding(at: ms(379)))
        #expect(c.release(serviceTime: nil, now: ms(281)) == [7])
        #expect(c.release(serviceTime: nil, now: ms(282)) == [8])
        #expect(c.release(serviceTime: nil, now: ms(283)) == [])
        // …an interval without one ends it: the full queue_timeout again.
        #expect(!c.isStanding(at: ms(380)))
        #expect(c.arrive(id: 10, priority: .normal, now: ms(381)) == .admit)
        #expect(!c.standing)
        _ = c.arrive(id: 11, priority: .normal, now: ms(381))
        #expect(c.arrive(id: 12, priority: .normal, now: ms(381)) == .enqueue(deadline: ms(1381)))
    }

    /// Waiters queued before the queue stood keep their deadline; newer ones expire first.
    @Test func expiryFindsAnEarlierDeadlineBehindALaterOne() {
        var c = controller(capacity: 6)  // 3 slots, 3 waiting
        fill(&c, ids: 0..<5, at: 0)  // 3 and 4 wait (deadline 1000)
        _ = c.release(serviceTime: nil, now: ms(20))  // 3 admitted after 20 ms
        _ = c.arrive(id: 5, priority: .normal, now: ms(20))  // deadline 1020
        _ = c.release(serviceTime: nil, now: ms(150))  // 4 admitted after 150 ms: standing
        #expect(c.standing)
        #expect(c.arrive(id: 6, priority: .normal, now: ms(150)) == .enqueue(deadline: ms(155)))
        #expect(c.expire(now: ms(154)) == [])
        #expect(c.expire(now: ms(155)) == [6])
        #expect(c.queued == 1)
        #expect(c.expire(now: ms(1020)) == [5])
    }

    @Test func predictionUsesTheTargetWhileStanding() {
        var c = controller(capacity: 20)  // 10 slots, 10 waiting
        for id in 0..<10 { _ = c.arrive(id: id, priority: .normal, now: ms(0)) }
        _ = c.arrive(id: 10, priority: .normal, now: ms(0))
        _ = c.release(serviceTime: .milliseconds(20), now: ms(10))  // a slot frees every 2 ms; 10 waited 10 ms
        _ = c.arrive(id: 11, priority: .normal, now: ms(10))
        _ = c.release(serviceTime: .milliseconds(20), now: ms(110))  // 11 waited 100 ms: standing
        #expect(c.standing)
        #expect(c.arrive(id: 12, priority: .normal, now: ms(110)) == .enqueue(deadline: ms(115)))  // 2 ms
        #expect(c.arrive(id: 13, priority: .normal, now: ms(110)) == .enqueue(deadline: ms(115)))  // 4 ms
        #expect(c.arrive(id: 14, priority: .normal, now: ms(110)) == .reject(.overloaded))  // 6 ms > 5 ms
    }

    @Test func aZeroTargetTurnsTheRuleOff() {
        var c = controller(capacity: 4, target: .zero)
        fill(&c, ids: 0..<4, at: 0)
        for step in 1...10 {
            _ = c.release(serviceTime: nil, now: ms(Int64(step) * 500))
            _ = c.arrive(id: 10 + step, priority: .normal, now: ms(Int64(step) * 500))
        }
        #expect(!c.standing)
        var on = controller(capacity: 4)
        fill(&on, ids: 0..<4, at: 0)
        for step in 1...10 {
            _ = on.release(serviceTime: nil, now: ms(Int64(step) * 500))
            _ = on.arrive(id: 10 + step, priority: .normal, now: ms(Int64(step) * 500))
        }
        #expect(on.standing)
        _ = on.update(settings: c.settings)
        #expect(!on.standing)
    }

    /// Sustained 5x overload, then light load, simulated: with the rule the admitted waits
    /// fall to the target once the queue stands, and the slots stay as busy as without it.
    /// `bursty`: requests finish only on 10 ms boundaries, so slots free in bursts that
    /// drain a short queue at once (the demo upstream does this; an earlier version of the
    /// rule stopped standing at each burst).
    @Test(arguments: [(true, false), (true, true), (false, false)])
    func sustainedOverloadKeepsSlotsBusyAndWaitsShort(rule: Bool, bursty: Bool) {
        // 10 slots, 10 waiting; each request takes 10 ms, so a slot frees every 1 ms.
        var c = controller(capacity: 20, target: rule ? .milliseconds(5) : .zero)
        var completions: [(at: Int64, id: Int)] = []  // µs
        var deadlines: [Int64] = []
        var since: [Int: Int64] = [:]
        var waitsAfterSettling: [Int64] = []
        var served = 0
        var id = 0
        func admitted(_ ids: [Int], at t: Int64) {
            for i in ids {
                if t >= 300_000 && t < 1_000_000 { waitsAfterSettling.append(t - since[i]!) }
                completions.append((bursty ? (t / 10_000 + 1) * 10_000 : t + 10_000, i))
            }
        }
        var t: Int64 = 0
        while t < 1_500_000 {
            // 5x the capacity for 1 s, then a fifth of it.
            let gap: Int64 = t < 1_000_000 ? 200 : 5_000
            let now = MonotonicTime(nanoseconds: t * 1000)
            while let next = completions.min(by: { $0.at < $1.at }), next.at <= t {
                completions.removeAll { $0.id == next.id }
                if next.at < 1_000_000 { served += 1 }
                admitted(c.release(serviceTime: .milliseconds(10), now: MonotonicTime(nanoseconds: next.at * 1000)), at: next.at)
            }
            if deadlines.contains(where: { $0 <= t }) {
                deadlines.removeAll { $0 <= t }
                _ = c.expire(now: now)
            }
            since[id] = t
            switch c.arrive(id: id, priority: .normal, now: now) {
            case .admit: admitted([id], at: t)
            case .enqueue(let deadline): deadlines.append(deadline.nanoseconds / 1000)
            case .reject: break
            }
            id += 1
            t += gap
        }
        // The slots were busy throughout the overload either way (1 000/s for 1 s).
        #expect(served >= 985)
        if rule {
            #expect(waitsAfterSettling.max()! <= 5_000)
            #expect(!c.standing)  // the light load found free slots
        } else {
            #expect(waitsAfterSettling.min()! >= 9_000)  // a full queue: every admitted request waited ~10 ms
        }
    }
}

/// The order of the checks, dry runs, and the tokens a refused request gives back.
struct AdmissionChecksTests {
    func config(global: (rate: Double, burst: Int)?, perClient: (rate: Double, burst: Int)?) throws -> GatewayConfig {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.rateLimit.global.enabled = global != nil
        if let global {
            config.rateLimit.global.rate = global.rate
            config.rateLimit.global.burst = global.burst
        }
        config.rateLimit.perClient.enabled = perClient != nil
        if let perClient {
            config.rateLimit.perClient.rate = perClient.rate
            config.rateLimit.perClient.burst = perClient.burst
        }
        return config
    }

    func outcome(_ checks: inout AdmissionChecks, _ client: ClientKey, atSecond second: Int64 = 0) -> String {
        switch checks.arrive(clientKey: client, priority: .normal, now: ms(second * 1000), jitter: 0).decision {
        case .admitted: "admitted"
        case .queued: "queued"
        case .rejected(let rejection): rejection.reason.rawValue
        }
    }

    /// Per-client burst 2 (refilling only every 1 000 s), global burst 3 at 1/s. At
    /// capacity 0 the utilization rule refuses every request and neither bucket runs
    /// dry; then the global bucket refuses one of c's, and c's own token comes back:
    /// c still gets two requests through.
    @Test func aRefusedRequestCostsNoTokens() throws {
        var checks = AdmissionChecks(config: try config(global: (1, 3), perClient: (0.001, 2)), capacity: 0, now: .zero)
        for _ in 0..<10 { #expect(outcome(&checks, "a") == "no_healthy_upstream") }
        _ = checks.controller.setCapacity(100)
        #expect(outcome(&checks, "a") == "admitted")
        #expect(outcome(&checks, "a") == "admitted")
        #expect(outcome(&checks, "a") == "client_rate_limited")
        #expect(outcome(&checks, "b") == "admitted")  // the global bucket's third token
        #expect(outcome(&checks, "c") == "rate_limited")
        #expect(outcome(&checks, "c", atSecond: 1) == "admitted")
        #expect(outcome(&checks, "c", atSecond: 2) == "admitted")
        #expect(outcome(&checks, "c", atSecond: 3) == "client_rate_limited")
    }

    /// What `/stats` and `/metrics` read of the limiters: the global tokens left now
    /// (refilling with time, none taken by reading), and the clients whose buckets were
    /// dropped at `max_clients` — a count a reload that rebuilds the per-client limiter
    /// does not take back (a Prometheus counter must never go down).
    @Test func theLimitersReadingsTakeNothingAndEvictionsSurviveAReload() throws {
        var config = try config(global: (1, 3), perClient: (0.001, 1))
        config.rateLimit.perClient.maxClients = 2
        var checks = AdmissionChecks(config: config, capacity: 100, now: .zero)
        #expect(checks.globalTokens(now: .zero) == 3 && checks.globalTokens(now: .zero) == 3)
        #expect(outcome(&checks, "a") == "admitted")
        #expect(outcome(&checks, "b") == "admitted")
        #expect(checks.globalTokens(now: .zero) == 1)
        #expect(checks.globalTokens(now: ms(1500)) == 2)  // one whole token back after a second
        #expect(outcome(&checks, "c", atSecond: 2) == "admitted")  // a third client: a's bucket dropped
        #expect(checks.perClientEvictions == 1 && checks.perClient?.count == 2)
        #expect(outcome(&checks, "a", atSecond: 2) == "admitted")  // back with a full burst: b's dropped
        #expect(checks.perClientEvictions == 2)
        config.rateLimit.perClient.burst = 5  // rebuilds the per-client limiter
        _ = checks.reconfigure(config: config, now: ms(2000))
        #expect(checks.perClient?.count == 0 && checks.perClientEvictions == 2)
        config.rateLimit.global.enabled = false
        _ = checks.reconfigure(config: config, now: ms(2000))
        #expect(checks.globalTokens(now: ms(2000)) == nil)
    }

    /// The preview (for a client waiting for `100 Continue`) names what `arrive` would
    /// refuse now — the client's bucket, the global one, the utilization rule — and
    /// takes nothing: after any number of previews, `arrive` decides as if none ran.
    @Test func aPreviewNamesTheRefusalAndTakesNothing() throws {
        var config = try config(global: (0.001, 3), perClient: (0.001, 2))
        config.admission.targetUtilization = 1
        var checks = AdmissionChecks(config: config, capacity: 2, now: .zero)
        let preview = { (checks: AdmissionChecks, client: ClientKey) in
            checks.preview(clientKey: client, priority: .normal, now: .zero, jitter: 0)?.reason.rawValue ?? "admitted"
        }
        for _ in 0..<5 { #expect(preview(checks, "a") == "admitted") }
        #expect(outcome(&checks, "a") == "admitted")
        #expect(outcome(&checks, "a") == "admitted")
        #expect(checks.controller.inFlight == 2, "the previews held no slot")
        #expect(preview(checks, "a") == "client_rate_limited")
        #expect(preview(checks, "b") == "overloaded")  // both slots busy, no queue
        _ = checks.controller.release(serviceTime: nil)
        #expect(preview(checks, "b") == "admitted")
        #expect(outcome(&checks, "b") == "admitted")  // the global bucket's third token
        _ = checks.controller.release(serviceTime: nil)
        #expect(preview(checks, "c") == "rate_limited")
        #expect(checks.perClient?.count == 2, "a preview adds no client to the table")
        _ = checks.controller.setCapacity(0)
        #expect(checks.preview(clientKey: "c", priority: .normal, now: ms(10_000_000), jitter: 0)?.reason == .noHealthyUpstream)
    }

    /// With a queue: a preview that would wait in it answers nil and queues no one; one
    /// that finds the queue full is refused.
    @Test func aPreviewQueuesNoOne() throws {
        var config = try config(global: nil, perClient: nil)
        config.admission.targetUtilization = 0.5
        var checks = AdmissionChecks(config: config, capacity: 10, now: .zero)  // S = 5, queue 5
        for _ in 0..<5 { #expect(outcome(&checks, "a") == "admitted") }
        for _ in 0..<4 { #expect(outcome(&checks, "a") == "queued") }
        for _ in 0..<3 { #expect(checks.preview(clientKey: "a", priority: .normal, now: .zero, jitter: 0) == nil) }
        #expect(checks.controller.queued == 4)
        #expect(outcome(&checks, "a") == "queued")
        #expect(checks.preview(clientKey: "a", priority: .normal, now: .zero, jitter: 0)?.reason == .overloaded)
        #expect(checks.controller.queued == 5)
    }

    /// A shed for capacity (`overloaded`) gives its tokens back too, and counts as the
    /// cluster's demand signal.
    @Test func aShedForCapacityGivesBackItsTokens() throws {
        var config = try config(global: (0.001, 2), perClient: nil)
        config.admission.targetUtilization = 1
        var checks = AdmissionChecks(config: config, capacity: 1, now: .zero)
        #expect(outcome(&checks, "a") == "admitted")  // the one slot, the first token
        for _ in 0..<5 { #expect(outcome(&checks, "a") == "overloaded") }
        #expect(checks.refusedForCapacity == 5)
        _ = checks.controller.release(serviceTime: nil)
        #expect(outcome(&checks, "a") == "admitted")  // the second token was never spent on a shed
        _ = checks.controller.release(serviceTime: nil)
        #expect(outcome(&checks, "a") == "rate_limited")
    }

    /// Cluster mode: a request that waits or is refused for capacity while this replica
    /// holds less than `S` asks for a lease renewal now — once until the next scheduled
    /// renewal, however many follow; a replica holding all of `S` never asks (nothing
    /// elsewhere to take), and neither does a gateway outside cluster mode.
    @Test func aReplicaShortOfItsShareAsksForAnEarlyRenewalOncePerInterval() throws {
        var config = try config(global: nil, perClient: nil)
        config.cluster.enabled = true
        var checks = AdmissionChecks(config: config, capacity: 30, now: .zero)  // S = 20, queue 10
        _ = checks.controller.setShare(.init(slots: 12, base: 20))  // queue 6
        func renew(_ checks: inout AdmissionChecks) -> (String, Bool) {
            let outcome = checks.arrive(clientKey: "a", priority: .normal, now: .zero, jitter: 0)
            let text: String =
                switch outcome.decision {
                case .admitted: "admitted"
                case .queued: "queued"
                case .rejected(let rejection): rejection.reason.rawValue
                }
            return (text, outcome.renewShare)
        }
        for _ in 0..<12 { #expect(renew(&checks) == ("admitted", false)) }
        #expect(renew(&checks) == ("queued", true))
        for _ in 0..<5 { #expect(renew(&checks) == ("queued", false)) }
        #expect(renew(&checks) == ("overloaded", false))
        // An early renewal's report does not allow another; a scheduled one does.
        #expect(checks.takeClusterReport(scheduled: false) == (demand: 12 + 6 + 1, fullSlots: 20, inFlight: 12))
        #expect(renew(&checks) == ("overloaded", false))
        #expect(checks.takeClusterReport(scheduled: true) == (demand: 12 + 6 + 1, fullSlots: 20, inFlight: 12))
        #expect(renew(&checks) == ("overloaded", true))
        // The whole of S granted: the 6 waiting are admitted, the next waits without asking.
        #expect(checks.controller.setShare(.init(slots: 20, base: 20)).admitted.count == 6)
        _ = checks.takeClusterReport(scheduled: true)
        for _ in 0..<2 { #expect(renew(&checks) == ("admitted", false)) }
        #expect(renew(&checks) == ("queued", false))

        // Outside cluster mode: never.
        var single = AdmissionChecks(config: try self.config(global: nil, perClient: nil), capacity: 3, now: .zero)
        for _ in 0..<5 { #expect(!single.arrive(clientKey: "a", priority: .normal, now: .zero, jitter: 0).renewShare) }
    }

    /// Handing over (an in-place upgrade's old process draining): a request that ends and
    /// leaves its slot free asks for a renewal — once until the agent listens again —
    /// and one whose slot a waiter takes does not (nothing changed for the store).
    @Test func handingOverAsksForARenewalWhenASlotIsFreed() throws {
        var config = try config(global: nil, perClient: nil)
        config.cluster.enabled = true
        var checks = AdmissionChecks(config: config, capacity: 3, now: .zero)  // S = 2, queue 1
        for _ in 0..<3 { _ = checks.arrive(clientKey: "a", priority: .normal, now: .zero, jitter: 0) }
        #expect(checks.controller.inFlight == 2 && checks.controller.queued == 1)
        let first = checks.release(serviceTime: nil, now: .zero)
        #expect(first.admitted.count == 1 && !first.renewShare, "not handing over")
        checks.handOver()
        #expect(checks.release(serviceTime: nil, now: .zero) == ([], true))
        #expect(checks.release(serviceTime: nil, now: .zero) == ([], false), "asked already")
        checks.listenForRenewal()
        _ = checks.arrive(clientKey: "a", priority: .normal, now: .zero, jitter: 0)
        _ = checks.arrive(clientKey: "a", priority: .normal, now: .zero, jitter: 0)
        _ = checks.arrive(clientKey: "a", priority: .normal, now: .zero, jitter: 0)
        #expect(checks.release(serviceTime: nil, now: .zero).renewShare == false, "a waiter took the slot")
        #expect(checks.release(serviceTime: nil, now: .zero).renewShare)
    }

    /// A limiter in dry run lets the request through and names the first check that would have refused it.
    @Test func dryRunNamesTheFirstWouldBeShed() throws {
        var config = try config(global: (0.001, 1), perClient: (0.001, 1))
        config.rateLimit.perClient.dryRun = true
        config.rateLimit.global.dryRun = true
        var checks = AdmissionChecks(config: config, capacity: 100, now: .zero)
        #expect(checks.arrive(clientKey: "a", priority: .normal, now: .zero, jitter: 0).wouldShed == nil)
        let second = checks.arrive(clientKey: "a", priority: .normal, now: .zero, jitter: 0)
        #expect(second.decision == .admitted)
        #expect(second.wouldShed == .clientRateLimited)
        let other = checks.arrive(clientKey: "b", priority: .normal, now: .zero, jitter: 0)
        #expect(other.decision == .admitted)
        #expect(other.wouldShed == .rateLimited)
    }
}

/// The slots a loop's requests hold per upstream, given back when an upstream leaves
/// rotation (a hung upstream's requests otherwise held every slot until they timed out).
struct UpstreamSlotHoldersTests {
    @Test func slotsOnAnUpstreamThatLeftAreGivenBackOnce() {
        var holders = UpstreamSlotHolders()
        let a1 = holders.attach(0)
        let b1 = holders.attach(1)
        let b2 = holders.attach(1)
        #expect(holders.holding(1) == 2)
        let released = holders.giveBack([1])
        #expect(released == 2)
        #expect(holders.holding(1) == 0)
        // b's requests end later: their slots were given back already.
        let (stillB1, stillB2) = (holders.detach(1, ticket: b1), holders.detach(1, ticket: b2))
        #expect(!stillB1 && !stillB2)
        // a's was never given back; a request attached to b after the give-back holds its slot.
        let stillA1 = holders.detach(0, ticket: a1)
        #expect(stillA1)
        let b3 = holders.attach(1)
        let none = holders.giveBack([0])
        let stillB3 = holders.detach(1, ticket: b3)
        #expect(none == 0 && stillB3)
        let never = holders.giveBack([1, 7])
        #expect(never == 0, "an upstream never attached to holds nothing")
    }

    /// An upstream whose requests hold its share is passed over for the next routed one
    /// with room; with none, the pick stands; a pick that left rotation (the walk never
    /// comes back to it) ends after `limit` steps.
    @Test func anUpstreamAtItsShareIsPassedOverForOneWithRoom() {
        var holders = UpstreamSlotHolders()
        for _ in 0..<2 { _ = holders.attach(0) }
        for _ in 0..<2 { _ = holders.attach(1) }
        _ = holders.attach(2)
        let ring: (Int) -> Int? = { ($0 + 1) % 3 }
        #expect(holders.withRoom(2, limit: 3, share: { _ in 2 }, next: ring) == 2, "below its share")
        #expect(holders.withRoom(0, limit: 3, share: { _ in 2 }, next: ring) == 2, "1 is full too: on to 2")
        #expect(holders.withRoom(0, limit: 3, share: { _ in 1 }, next: ring) == 0, "none has room: the pick stands")
        // 0 left rotation: the routed ones are 1 and 2, both full, and the walk circles them.
        let routed: (Int) -> Int? = { $0 == 1 ? 2 : 1 }
        var steps = 0
        #expect(holders.withRoom(0, limit: 3, share: { _ in 1 }, next: { steps += 1; return routed($0) }) == 0)
        #expect(steps == 3)
    }

    /// A retry moves the slot with the attempt (detach, then attach elsewhere); a request
    /// whose first upstream gave its slot back moves without one.
    @Test func aRetryMovesItsSlotUnlessItWasGivenBack() {
        var holders = UpstreamSlotHolders()
        let first = holders.attach(0)
        let moved = holders.detach(0, ticket: first)
        let second = holders.attach(2)
        #expect(moved && holders.holding(0) == 0 && holders.holding(2) == 1)
        let released = holders.giveBack([2])
        let stillHeld = holders.detach(2, ticket: second)
        #expect(released == 1 && !stillHeld)
    }
}
