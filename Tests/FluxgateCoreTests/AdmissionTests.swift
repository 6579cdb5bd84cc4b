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
