import FluxgateCore
import Testing

/// Share computation for cluster mode: max-min fairness, floor, the sum bound.
struct FairShareTests {
    @Test(arguments: [
        (12, [10, 10, 10], 1, [4, 4, 4]),
        (12, [2, 20, 20], 1, [2, 5, 5]),
        (12, [0, 0, 6], 1, [2, 2, 7]),
        (2, [5, 5, 5], 1, [1, 1, 0]),
        (100, [0], 25, [62]),
        (100, [90, 0, 0], 8, [84, 8, 8]),
        (100, [70, 0, 0], 8, [73, 11, 11]),
        (100, [200, 0, 0], 8, [84, 8, 8]),
        (10, [3, 3, 100], 0, [3, 3, 4]),
        (0, [5, 5], 1, [0, 0]),
    ])
    func splits(_ capacity: Int, _ demands: [Int], _ floor: Int, _ expected: [Int]) {
        #expect(FairShare.split(capacity: capacity, demands: demands, floor: floor) == expected)
    }

    /// Over many shapes: never more than S, every replica at least its floor (when
    /// the floors fit), nobody above its want unless everyone is satisfied, and no
    /// unsatisfied replica below another's share by more than one slot.
    @Test func propertiesHoldForManyShapes() {
        // SplitMix64 with a fixed seed: the request-id generator is one.
        var generator = RequestIDGenerator(seed: 7)
        for _ in 0..<5000 {
            let n = Int(generator.next() % 6) + 1
            let capacity = Int(generator.next() % 200)
            let demands = (0..<n).map { _ in Int(generator.next() % 120) }
            let floor = Int(generator.next() % 10)
            let shares = FairShare.split(capacity: capacity, demands: demands, floor: floor)
            #expect(shares.reduce(0, +) <= capacity)
            #expect(shares.allSatisfy { $0 >= 0 })
            if capacity >= n * floor && capacity >= n {
                #expect(shares.allSatisfy { $0 >= max(floor, 1) }, "\(capacity) \(demands) \(floor) → \(shares)")
            }
            let wants = demands.map { max($0, min(floor, capacity / n), capacity >= n ? 1 : 0) }
            if wants.reduce(0, +) > capacity {
                #expect(shares.reduce(0, +) == capacity, "saturated: all of S is handed out")
                let unsatisfied = shares.indices.filter { shares[$0] < wants[$0] }
                for i in unsatisfied {
                    for j in shares.indices where shares[j] > shares[i] + 1 {
                        Issue.record("\(capacity) \(demands) \(floor) → \(shares): \(j) has more than unsatisfied \(i)")
                    }
                }
            } else {
                #expect(zip(shares, wants).allSatisfy { $0 >= $1 })
            }
        }
    }
}

struct LeasePlannerTests {
    let t0 = MonotonicTime(nanoseconds: 1_000_000_000)

    @Test func asksForItsFairShareOfTheLastView() {
        var planner = LeasePlanner(settings: .init(leaseTTL: .seconds(2), shareFloor: 0.25))
        // Alone at first: wants its demand plus headroom (half the rest: one part kept for a newcomer).
        #expect(planner.report(demand: 10, slots: 100, now: t0).want == 62)
        _ = planner.granted(62, slots: 100, peers: [50, 50], now: t0)
        #expect(planner.replicas == 3)
        // With two peers of demand 50: max-min over (10, 50, 50) in 100 → 10 + nothing left.
        let report = planner.report(demand: 10, slots: 100, now: t0)
        #expect(report.want == 10)
    }

    @Test func demandRisesAtOnceAndDecaysByHalf() {
        var planner = LeasePlanner(settings: .init())
        #expect(planner.report(demand: 40, slots: 100, now: .zero).demand == 40)
        #expect(planner.report(demand: 0, slots: 100, now: .zero).demand == 20)
        #expect(planner.report(demand: 0, slots: 100, now: .zero).demand == 10)
        #expect(planner.report(demand: 30, slots: 100, now: .zero).demand == 30)
    }

    /// The store is down: the last grant holds for the lease TTL, then `S / replicas`.
    @Test func aLapsedLeaseFallsBackToTheStaticShare() {
        var planner = LeasePlanner(settings: .init(leaseTTL: .seconds(2)))
        let granted = planner.granted(30, slots: 60, peers: [5, 5], now: t0)
        #expect(granted == .init(slots: 30, base: 60))
        #expect(planner.storeFailed(slots: 60, now: t0 + .milliseconds(1999)) == granted)
        #expect(!planner.degraded)
        #expect(planner.storeFailed(slots: 60, now: t0 + .seconds(2)) == .init(slots: 20, base: 60))
        #expect(planner.mode == .staticShare)
        #expect(planner.degraded)
        // Back: the grant rules again.
        #expect(planner.granted(25, slots: 60, peers: [5, 5], now: t0 + .seconds(3)) == .init(slots: 25, base: 60))
        #expect(planner.mode == .leased)
    }

    /// Back from a fallback: the store's ledger may not know the replicas still on
    /// their static shares, so for one lease TTL this one asks for no more than its own.
    @Test func afterAFallbackTheWantStaysAtTheStaticShareForOneTTL() {
        var planner = LeasePlanner(settings: .init(leaseTTL: .seconds(2), fallbackReplicas: 3))
        _ = planner.storeFailed(slots: 60, now: t0)
        #expect(planner.mode == .staticShare)
        #expect(planner.report(demand: 50, slots: 60, now: t0).want == 20)
        _ = planner.granted(20, slots: 60, peers: [], now: t0 + .seconds(1))
        #expect(planner.report(demand: 50, slots: 60, now: t0 + .seconds(2)).want == 20)
        #expect(planner.report(demand: 50, slots: 60, now: t0 + .milliseconds(2999)).want == 20)
        #expect(planner.report(demand: 50, slots: 60, now: t0 + .seconds(3)).want == 55)
    }

    @Test func closedAdmitsNothingOnceTheLeaseLapses() {
        var planner = LeasePlanner(settings: .init(leaseTTL: .seconds(1), onStoreFailure: .closed))
        _ = planner.granted(10, slots: 20, peers: [], now: t0)
        #expect(planner.storeFailed(slots: 20, now: t0 + .seconds(1)).slots == 0)
        #expect(planner.mode == .closed)
    }

    /// Before the store ever answered: the static share for `fallback_replicas`.
    @Test func beforeTheFirstAnswerTheExpectedReplicaCountApplies() {
        var planner = LeasePlanner(settings: .init(fallbackReplicas: 3))
        #expect(planner.storeFailed(slots: 67, now: t0) == .init(slots: 22, base: 67))
    }

    /// A share shrinks with the local S (an upstream went down) and never grows past the
    /// grant; the share due scales alike and is never below the grant.
    @Test func aShareScalesDownWithTheLocalSlots() {
        let share = LeasePlanner.Share(slots: 30, base: 60)
        #expect(share.slots(for: 60) == 30)
        #expect(share.slots(for: 30) == 15)
        #expect(share.slots(for: 90) == 30)
        #expect(share.slots(for: 0) == 0)
        #expect(share.due == 30)
        let short = LeasePlanner.Share(slots: 0, base: 60, due: 40)
        #expect(short.due(for: 60) == 40 && short.due(for: 30) == 20 && short.slots(for: 30) == 0)
        #expect(LeasePlanner.Share(slots: 30, base: 60, due: 10).due == 30)
    }

    /// A grant short of the replica's fair share (the others' running requests hold the
    /// rest) keeps that share as the one due; a successor in an in-place upgrade is due
    /// its predecessor's demand from the first lease, and may queue for the slots the
    /// predecessor still holds.
    @Test func aGrantRemembersTheShareDue() {
        var planner = LeasePlanner(settings: .init())
        #expect(planner.report(demand: 15, slots: 20, now: t0).want == 17)  // 15 and half of the 5 left
        // Beside a peer of demand 20: max-min over (15, 20) in 20 → 10 each.
        #expect(planner.granted(0, slots: 20, peers: [20], now: t0) == .init(slots: 0, base: 20, due: 10))
        var successor = LeasePlanner(settings: .init())
        _ = successor.report(demand: 0, slots: 20, now: t0)
        #expect(successor.granted(0, slots: 20, peers: [20], predecessor: (20, 20), now: t0) == .init(slots: 0, base: 20, due: 10, inTransit: 20))
        #expect(successor.predecessorDemand == 20 && successor.report(demand: 2, slots: 20, now: t0) == (2, 10), "asked for, not reported")
        // The predecessor hands over and reports no demand: the successor's own (2) rules
        // its due share (7: its floor and headroom), and it may queue for the 17 in transit.
        #expect(successor.granted(3, slots: 20, peers: [0], predecessor: (0, 17), now: t0) == .init(slots: 3, base: 20, due: 7, inTransit: 17))
        // Drained: nothing in transit.
        #expect(successor.granted(17, slots: 20, peers: [], now: t0) == .init(slots: 17, base: 20, due: 17))
    }

    /// A burst that arrived after the report is due its share at the answer: the
    /// smoothed demand rises to what runs and waits then.
    @Test func theShareDueFollowsTheDemandAtTheAnswer() {
        var planner = LeasePlanner(settings: .init())
        _ = planner.report(demand: 1, slots: 20, now: t0)
        #expect(planner.granted(7, slots: 20, peers: [], demandNow: 20, now: t0) == .init(slots: 7, base: 20, due: 20))
        #expect(planner.demand == 20)
    }

    /// Handing over, the replica asks for what it still runs and queues — no floor, no
    /// headroom, no smoothed demand holding slots the new process waits for — and
    /// reports no demand of its own (its successor has taken it over).
    @Test func handingOverAsksForWhatStillRuns() {
        var planner = LeasePlanner(settings: .init(shareFloor: 0.25))
        _ = planner.report(demand: 20, slots: 20, now: t0)
        _ = planner.granted(20, slots: 20, peers: [], now: t0)
        planner.handOver()
        // (Without handing over the demand would decay by half per report — 16, 9.5, … —
        // and the want add the floor and headroom to it.)
        let reports = [12, 3, 0, 30].map { planner.report(demand: $0, slots: 20, now: t0) }
        #expect(reports.map(\.demand) == [0, 0, 0, 0])
        #expect(reports.map(\.want) == [12, 3, 0, 20])
    }
}

struct SharedTokenBucketTests {
    let t0 = MonotonicTime(nanoseconds: 5_000_000_000)

    @Test func spendsBatchesAndAsksForTheNextAtHalf() {
        var bucket = SharedTokenBucket(rate: 1000, burst: 500, batchFraction: 0.01, onStoreFailure: .staticShare)
        #expect(bucket.batch == 10)
        // Empty at start: denied, and a fetch is asked for once.
        var (decision, fetch) = bucket.take(now: t0)
        #expect(decision == .denied(retryAfter: .milliseconds(1)))
        #expect(fetch)
        #expect(bucket.take(now: t0).fetch == false)
        bucket.fetched(granted: 10, wait: .zero, replicas: 1, now: t0)
        var fetches = 0
        for _ in 0..<5 {
            (decision, fetch) = bucket.take(now: t0)
            if case .denied = decision { Issue.record("a held token was refused") }
            if fetch { fetches += 1 }
        }
        // Stock 5 = half a batch: the fifth take asks for more.
        #expect(fetches == 1)
        #expect(bucket.stock == 5)
    }

    /// A refunded token goes back into the stock (shared) or the fallback bucket (static share).
    @Test func refundsGoBackWhereTheTokenCameFrom() {
        var bucket = SharedTokenBucket(rate: 1000, burst: 500, batchFraction: 0.01, onStoreFailure: .staticShare)
        _ = bucket.take(now: t0)
        bucket.fetched(granted: 10, wait: .zero, replicas: 1, now: t0)
        _ = bucket.take(now: t0)
        #expect(bucket.stock == 9)
        bucket.refund()
        #expect(bucket.stock == 10)
        bucket.fetchFailed(replicas: 1, now: t0)
        var allowed = 0
        while case .allowed = bucket.take(now: t0).decision { allowed += 1 }
        #expect(allowed == 500)
        bucket.refund()
        if case .denied = bucket.take(now: t0).decision { Issue.record("the refunded fallback token was not there") }
    }

    /// The store had fewer than asked: no fetch before the wait it named, and the
    /// refusal's Retry-After is that wait.
    @Test func anEmptyStoreIsNotAskedAgainBeforeItsWait() {
        var bucket = SharedTokenBucket(rate: 100, burst: 100, batchFraction: 0.1, onStoreFailure: .staticShare)
        _ = bucket.take(now: t0)
        bucket.fetched(granted: 0, wait: .milliseconds(100), replicas: 1, now: t0)
        let (decision, fetch) = bucket.take(now: t0 + .milliseconds(40))
        #expect(decision == .denied(retryAfter: .milliseconds(60)))
        #expect(!fetch)
        #expect(bucket.take(now: t0 + .milliseconds(100)).fetch)
    }

    /// The store is unreachable: a local bucket of rate / replicas until a fetch succeeds.
    @Test func fallsBackToAStaticShareAndRecovers() {
        var bucket = SharedTokenBucket(rate: 300, burst: 30, batchFraction: 0.1, onStoreFailure: .staticShare)
        _ = bucket.take(now: t0)
        bucket.fetchFailed(replicas: 3, now: t0)
        #expect(bucket.mode == .staticShare)
        // rate 100/s, burst 10 for this replica.
        var allowed = 0
        for _ in 0..<50 {
            if case .allowed = bucket.take(now: t0).decision { allowed += 1 }
        }
        #expect(allowed == 10)
        // A second later: 100 more tokens' worth, capped at the burst; and a fetch is tried again.
        let (_, fetch) = bucket.take(now: t0 + .seconds(1))
        #expect(fetch)
        bucket.fetched(granted: 30, wait: .zero, replicas: 3, now: t0 + .seconds(1))
        #expect(bucket.mode == .shared)
        #expect(bucket.stock == 30)
    }

    /// A hung store (no answer, no refusal): with the stock spent, requests wait no
    /// more than the patience for the fallback; a late answer switches back.
    @Test func aLateAnswerDoesNotHoldRequestsPastThePatience() {
        var bucket = SharedTokenBucket(rate: 300, burst: 30, batchFraction: 0.1, onStoreFailure: .staticShare, replicas: 3)
        #expect(bucket.take(now: t0).fetch)
        if case .allowed = bucket.take(now: t0 + .milliseconds(49)).decision { Issue.record("nothing held yet") }
        if case .denied = bucket.take(now: t0 + .milliseconds(50)).decision { Issue.record("the fallback should decide now") }
        #expect(bucket.mode == .staticShare)
        bucket.fetched(granted: 30, wait: .zero, replicas: 3, now: t0 + .milliseconds(300))
        #expect(bucket.mode == .shared && bucket.stock == 30)
    }

    @Test func closedRefusesUntilTheStoreIsBack() {
        var bucket = SharedTokenBucket(rate: 100, burst: 10, batchFraction: 0.1, onStoreFailure: .closed)
        _ = bucket.take(now: t0)
        bucket.fetchFailed(replicas: 2, now: t0)
        #expect(bucket.mode == .closed)
        if case .allowed = bucket.take(now: t0 + .milliseconds(10)).decision { Issue.record("closed must refuse") }
    }

    /// Over a long run at steady demand above the rate, a replica admits no more than
    /// the store handed out.
    @Test func admitsExactlyWhatTheStoreGranted() {
        var bucket = SharedTokenBucket(rate: 1000, burst: 100, batchFraction: 0.02, onStoreFailure: .staticShare)
        var granted = 0
        var admitted = 0
        var now = t0
        for _ in 0..<20_000 {
            now = now + .microseconds(500)
            let (decision, fetch) = bucket.take(now: now)
            if case .allowed = decision { admitted += 1 }
            if fetch {
                bucket.fetched(granted: 20, wait: .zero, replicas: 1, now: now)
                granted += 20
            }
        }
        #expect(admitted <= granted)
        #expect(granted - admitted <= bucket.batch + bucket.batch / 2)
    }
}

struct ClusterConfigTests {
    @Test func absentByDefault() throws {
        let config = try ConfigLoader.load(yaml: "")
        #expect(!config.cluster.enabled)
    }

    @Test func theSectionTurnsItOn() throws {
        let config = try ConfigLoader.load(
            yaml: """
                cluster:
                  redis_url: "redis://:pw@10.0.0.5:6380/2"
                  key_prefix: edge
                  sync_interval: 100ms
                  lease_ttl: 1s
                  on_store_failure: closed
                rate_limit: { global: { batch: 0.05, on_store_failure: closed } }
                """)
        #expect(config.cluster.enabled)
        #expect(config.cluster.redis == RedisURL(host: "10.0.0.5", port: 6380, password: "pw", database: 2))
        #expect(config.cluster.keyPrefix == "edge")
        #expect(config.cluster.syncInterval == .milliseconds(100))
        #expect(config.cluster.leaseTTL == .seconds(1))
        #expect(config.cluster.onStoreFailure == .closed)
        #expect(config.rateLimit.global.batch == 0.05)
        #expect(config.rateLimit.global.onStoreFailure == .closed)
        #expect("\(config.cluster.redis)" == "redis://10.0.0.5:6380/2")
    }

    @Test func redissMeansTLS() throws {
        let config = try ConfigLoader.load(yaml: "cluster: { redis_url: \"rediss://cache.example:6380\", tls_ca_file: \"\(#filePath)\" }")
        #expect(config.cluster.redis == RedisURL(host: "cache.example", port: 6380, tls: true))
        #expect(config.cluster.tlsCAFile == #filePath && config.cluster.tlsVerify)
        #expect("\(config.cluster.redis)" == "rediss://cache.example:6380/0")
    }

    @Test func theEnvironmentCanTurnItOn() throws {
        let config = try ConfigLoader.load(yaml: "", environment: ["FLUXGATE_CLUSTER_REDIS_URL": "redis://redis:6379"])
        #expect(config.cluster.enabled)
        #expect(config.cluster.redis.host == "redis")
    }

    @Test(arguments: [
        ("cluster: { redis_url: \"http://x:1\" }", "cluster.redis_url: must start with redis:// or rediss:// (TLS)"),
        ("cluster: { tls_ca_file: \"\(#filePath)\" }", "cluster.tls_ca_file: applies to rediss:// URLs only"),
        ("cluster: { tls_verify: false }", "cluster.tls_verify: applies to rediss:// URLs only"),
        ("cluster: { tls_key: \"\(#filePath)\" }", "cluster.tls_key: applies to rediss:// URLs only"),
        ("cluster: { redis_url: \"rediss://x:1\", tls_certificate: \"\(#filePath)\" }", "cluster: tls_certificate and tls_key go together: set both (a client certificate for rediss://) or neither"),
        ("cluster: { redis_url: \"rediss://x:1\", tls_ca_file: /nonexistent.pem }", "cluster.tls_ca_file: no readable file at /nonexistent.pem"),
        ("cluster: { redis_url: \"redis://x:1/99\" }", "cluster.redis_url: the database after / must be 0...15"),
        ("cluster: { redis_url: \"redis://:0\" }", "cluster.redis_url: expected redis://host:port"),
        ("cluster: { sync_interval: 1s, lease_ttl: 1500ms }", "cluster.lease_ttl: must be at least twice cluster.sync_interval"),
        ("cluster: { on_store_failure: open }", "cluster.on_store_failure: expected static_share or closed"),
        ("cluster: { key_prefix: \"a b\" }", "cluster.key_prefix: must be 1 to 64 characters"),
        ("cluster: { redis: x }", "cluster.redis: unknown key"),
    ])
    func mistakesAreNamed(_ yaml: String, _ message: String) {
        let (path, text) = (String(message.prefix { $0 != ":" }), String(message.drop { $0 != ":" }.dropFirst(2)))
        do {
            _ = try ConfigLoader.load(yaml: yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            let described = "\(error)"
            #expect(described.contains("\(path) (line 1): \(text)") || described.contains("\(path): \(text)"), "\(described)")
        }
    }

    @Test func aClusterChangeNeedsARestart() throws {
        let a = try ConfigLoader.load(yaml: "cluster: { key_prefix: a }")
        let b = try ConfigLoader.load(yaml: "cluster: { key_prefix: b }")
        #expect(a.restartOnlyDifferences(b) == ["cluster"])
    }
}

/// The admission controller running a share of S (cluster mode).
struct AdmissionShareTests {
    @Test func aShareLimitsSlotsAndTheQueueInProportion() {
        var controller = AdmissionController(capacity: 30, settings: .init(targetUtilization: 2.0 / 3.0))
        #expect((controller.slots, controller.queueLimit, controller.fullSlots) == (20, 10, 20))
        _ = controller.setShare(.init(slots: 5, base: 20))
        #expect((controller.slots, controller.queueLimit, controller.fullSlots) == (5, 3, 20))
        #expect(controller.effectiveCapacity == 8)
        for id in 0..<5 { #expect(controller.arrive(id: id, priority: .critical, now: .zero) == .admit) }
        #expect(controller.utilization == 5.0 / 8.0)
        // The share grows: waiters are admitted into it.
        if case .enqueue = controller.arrive(id: 5, priority: .critical, now: .zero) {} else { Issue.record("should queue") }
        let (admitted, _) = controller.setShare(.init(slots: 10, base: 20))
        #expect(admitted == [5])
        // An upstream goes down: C 15, S 10, the share scales to 5 of it.
        _ = controller.setCapacity(15)
        #expect((controller.slots, controller.fullSlots) == (5, 10))
        // Back to a single gateway.
        _ = controller.setShare(nil)
        #expect((controller.slots, controller.queueLimit) == (10, 5))
    }

    /// A smaller share sheds no waiter: they keep their places until a slot or their
    /// deadline, and only later arrivals see the smaller queue. A lower capacity (an
    /// upstream went down) still sheds beyond its queue.
    @Test func aSmallerShareKeepsItsWaiters() {
        var controller = AdmissionController(capacity: 30, settings: .init(targetUtilization: 2.0 / 3.0))
        _ = controller.setShare(.init(slots: 0, base: 20, due: 10, inTransit: 20))  // queue 25
        for id in 0..<20 { #expect(controller.arrive(id: id, priority: .normal, now: .zero) == .enqueue(deadline: .zero + .seconds(1))) }
        let change = controller.setShare(.init(slots: 7, base: 20, due: 12))  // the predecessor left: queue 6
        #expect(change.admitted == Array(0..<7) && change.rejected.isEmpty)
        #expect(controller.queued == 13 && controller.queueLimit == 6)
        #expect(controller.arrive(id: 20, priority: .normal, now: .zero) == .reject(.overloaded))
        #expect(controller.setCapacity(15).rejected.count == 13 - 3)  // S 10: share 3 slots, queue 3
    }

    @Test func aZeroShareRefusesAsOverloaded() {
        var controller = AdmissionController(capacity: 30, settings: .init())
        _ = controller.setShare(.init(slots: 0, base: 20))
        #expect(controller.arrive(id: 1, priority: .critical, now: .zero) == .reject(.overloaded))
    }
}

/// Early lease renewals (``RenewalPacing``): one at a time, chained while they make
/// the share grow and requests still wait, at most three between scheduled ones.
struct RenewalPacingTests {
    /// Each step: what the agent reports, and whether pacing says send an early renewal now.
    enum Step {
        case scheduled
        case asked(send: Bool)
        case answered(early: Bool, grew: Bool, stillShort: Bool, next: RenewalPacing.Next)
    }

    func run(_ steps: [Step], sourceLocation: SourceLocation = #_sourceLocation) -> RenewalPacing {
        var pacing = RenewalPacing()
        for (index, step) in steps.enumerated() {
            switch step {
            case .scheduled:
                pacing.scheduledSent()
            case .asked(let send):
                let sent = pacing.asked()
                #expect(sent == send, "step \(index)", sourceLocation: sourceLocation)
            case .answered(let early, let grew, let stillShort, let next):
                let told = pacing.answered(early: early, grew: grew, stillShort: stillShort)
                #expect(told == next, "step \(index)", sourceLocation: sourceLocation)
            }
        }
        return pacing
    }

    @Test func anAskIsSentAtOnceOrWhenTheRenewalInFlightIsAnswered() {
        let pacing = run([
            .scheduled,
            .asked(send: false),  // a renewal is in flight
            .answered(early: false, grew: false, stillShort: false, next: .send),  // the ask goes now
            .answered(early: true, grew: true, stillShort: false, next: .listen),  // nothing waits now: the gate may ask again
            .asked(send: true),
        ])
        #expect(pacing.early == 1 && pacing.inFlight == 1, "the one that grew the share is not counted")
    }

    /// A chain goes on while each renewal makes the share grow (those are not counted);
    /// three that bring nothing spend the interval's budget.
    @Test func aChainFollowsABurstWhileTheShareGrowsAndStopsAtTheBudget() {
        let pacing = run([
            .scheduled, .answered(early: false, grew: false, stillShort: false, next: .nothing),
            .asked(send: true),
            .answered(early: true, grew: true, stillShort: true, next: .send),
            .answered(early: true, grew: true, stillShort: true, next: .send),
            .answered(early: true, grew: true, stillShort: true, next: .send),
            .answered(early: true, grew: true, stillShort: true, next: .send),  // a fourth step: it grew every time
            .answered(early: true, grew: false, stillShort: true, next: .nothing),  // brought nothing: 1 of 3
            .asked(send: true), .answered(early: true, grew: false, stillShort: true, next: .nothing),  // 2
            .asked(send: true), .answered(early: true, grew: false, stillShort: true, next: .nothing),  // 3
            .asked(send: false),  // spent
            .scheduled, .answered(early: false, grew: false, stillShort: true, next: .nothing),
            .asked(send: true),  // a new interval, a new budget
        ])
        #expect(pacing.early == 1)
    }

    /// Handing over: every ask is sent, beyond the budget, one at a time, and every
    /// answer lets the gate ask again (each slot freed reaches the store).
    @Test func handingOverSendsEveryAskOneAtATime() {
        var pacing = run([
            .scheduled, .answered(early: false, grew: false, stillShort: false, next: .nothing),
            .asked(send: true), .answered(early: true, grew: false, stillShort: true, next: .nothing),
            .asked(send: true), .answered(early: true, grew: false, stillShort: true, next: .nothing),
            .asked(send: true), .answered(early: true, grew: false, stillShort: true, next: .nothing),
        ])
        var told: [String] = []
        func note(_ value: Bool) { told.append(value ? "send" : "wait") }
        func note(_ next: RenewalPacing.Next) { told.append("\(next)") }
        note(pacing.asked())  // the budget is spent
        pacing.handOver()
        note(pacing.asked())
        note(pacing.asked())  // one in flight: this one waits for its answer
        note(pacing.answered(early: true, grew: false, stillShort: false))
        note(pacing.answered(early: true, grew: false, stillShort: false))
        pacing.scheduledSent()
        note(pacing.asked())
        note(pacing.answered(early: false, grew: false, stillShort: false))
        note(pacing.answered(early: true, grew: false, stillShort: false))
        #expect(told == ["wait", "send", "wait", "send", "listen", "wait", "send", "listen"])
        #expect(pacing.early == 1 && pacing.inFlight == 0, "one since the last scheduled renewal")
    }

    /// Short of the share due while requests wait (the slots are held by requests
    /// running elsewhere): a renewal that brings nothing is tried again after 5 ms,
    /// 10 ms, … up to the interval, one at a time; one that brings slots resets the delay.
    @Test func shortOfTheShareDueARenewalIsRetriedWithBackoff() {
        var pacing = RenewalPacing(interval: .milliseconds(250))
        var told: [String] = []
        func note(_ next: RenewalPacing.Next) {
            if case .retry(let delay) = next { told.append("retry \(delay.nanosecondsClamped / 1_000_000) ms") } else { told.append("\(next)") }
        }
        let first = pacing.asked()
        note(pacing.answered(early: true, grew: false, stillShort: true, shortOfDue: true))
        note(pacing.answered(early: false, grew: false, stillShort: true, shortOfDue: true))  // armed already: no second timer
        let fired = pacing.retryFired()
        #expect(first && fired)
        for _ in 0..<6 {
            note(pacing.answered(early: true, grew: false, stillShort: true, shortOfDue: true))
            _ = pacing.retryFired()
        }
        #expect(told == ["retry 5 ms", "nothing", "retry 10 ms", "retry 20 ms", "retry 40 ms", "retry 80 ms", "retry 160 ms", "retry 250 ms"])
        // Slots came: the chain goes on at once (within the budget) and the delay starts over.
        note(pacing.answered(early: true, grew: true, stillShort: true, shortOfDue: true))
        note(pacing.answered(early: true, grew: false, stillShort: true, shortOfDue: true))
        // A renewal in flight when the delay passes brings the news itself.
        pacing.scheduledSent()
        note(pacing.answered(early: true, grew: false, stillShort: true, shortOfDue: true))
        pacing.scheduledSent()
        let firedInFlight = pacing.retryFired()
        #expect(!firedInFlight)
        note(pacing.answered(early: false, grew: false, stillShort: true, shortOfDue: false))  // due what it holds: no retry
        #expect(told.suffix(4) == ["send", "retry 5 ms", "nothing", "nothing"])
    }

    /// No chain from a scheduled renewal, yet slots are due and requests wait: a retry.
    @Test func aScheduledRenewalShortOfTheShareDueIsFollowedByARetry() {
        var pacing = RenewalPacing(interval: .milliseconds(250))
        pacing.scheduledSent()
        #expect(pacing.answered(early: false, grew: true, stillShort: true, shortOfDue: true) == .retry(after: .milliseconds(5)))
        #expect(pacing.early == 0 && pacing.retryArmed)
    }

    @Test func aRenewalThatBringsNothingEndsTheChain() {
        let pacing = run([
            .asked(send: true),
            .answered(early: true, grew: false, stillShort: true, next: .nothing),  // the slots are held elsewhere
            .scheduled,
            .answered(early: false, grew: true, stillShort: true, next: .nothing),  // a scheduled one does not chain
        ])
        #expect(pacing.inFlight == 0)
    }
}
