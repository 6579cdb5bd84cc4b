import FluxgateCore
import Logging
import NIOCore
import Synchronization

/// The shell around the admission decisions, shared by every event loop.
///
/// One short critical section per request on the way in (``AdmissionChecks``: client
/// bucket, global bucket, ``AdmissionController``, in that order, decided in
/// FluxgateCore) and one on the way out (release, which may admit waiters). This type
/// only locks, parks queued requests and resumes them on their own event loop. It knows
/// no HTTP either — ``ProxyHandler`` turns rejections into 429/503 answers.
final class AdmissionGate: Sendable {
    typealias Rejection = AdmissionChecks.Rejection
    typealias RateLimitPolicy = AdmissionChecks.RateLimitPolicy

    enum Verdict: Sendable {
        case admitted
        case queued(id: Int, deadline: MonotonicTime)
        case rejected(Rejection)
    }

    /// How a queued request ends.
    enum Resumption: Sendable {
        case admitted
        case rejected(Rejection)
    }

    private struct Waiter {
        var loop: any EventLoop
        var resume: @Sendable (Resumption) -> Void
    }

    /// The decisions (``AdmissionChecks``, pure, in FluxgateCore) and the requests
    /// parked in the controller's queue, by their queue id.
    private struct State {
        var checks: AdmissionChecks
        var waiters: [Int: Waiter] = [:]
        /// Slots given back by requests on upstreams that left rotation, so far.
        var givenBack = 0

        /// The waiters a controller change admitted and shed, taken out of the table.
        mutating func take(_ change: (admitted: [Int], rejected: [Int])) -> (admitted: [Waiter], rejected: [Waiter]) {
            (change.admitted.compactMap { waiters.removeValue(forKey: $0) }, change.rejected.compactMap { waiters.removeValue(forKey: $0) })
        }

        /// 503 `queue_timeout`, its `Retry-After` from how long the queue takes to drain.
        func queueTimeout(jitter: Double) -> Rejection {
            Rejection(reason: .queueTimeout, retryAfterSeconds: RetryAfter.seconds(checks.controller.drainEstimate, jitter: jitter))
        }
    }

    private let state: Mutex<State>
    /// The controller's `slots` and `C` as last set (``slotShare(maxConcurrency:loops:)``
    /// reads them per request without the lock).
    private let publishedSlots = Atomic<Int>(0)
    private let publishedCapacity = Atomic<Int>(0)
    /// Cluster mode: what the gate asks of the cluster agent (set once at start).
    struct ClusterHooks: Sendable {
        /// A batch of tokens from the shared bucket.
        var fetchTokens: @Sendable () -> Void
        /// A lease renewal now (``AdmissionChecks/Outcome/renewShare``).
        var renewShare: @Sendable () -> Void
    }
    private let clusterHooks = Mutex<ClusterHooks?>(nil)
    /// What dry runs would have shed (real sheds are counted where each exchange ends).
    let dryRun = DryRunCounters()
    private let logger: Logger
    /// A dry run under real overload must not flood the log.
    private let dryRunLog = LogThrottle()

    init(config: GatewayConfig, capacity: Int, now: MonotonicTime, logger: Logger) {
        self.logger = logger
        self.state = Mutex(State(checks: AdmissionChecks(config: config, capacity: capacity, now: now)))
        state.withLock { publish($0.checks.controller) }
    }

    /// Called under the lock after every change of the controller's slots or capacity.
    private func publish(_ controller: AdmissionController) {
        publishedSlots.store(controller.slots, ordering: .relaxed)
        publishedCapacity.store(controller.capacity, ordering: .relaxed)
    }

    /// An upstream's share of this replica's slots on one of `loops` event loops:
    /// `ceil(slots × max_concurrency / C / loops)`, at least 1 — `max_concurrency × u` on
    /// one gateway, its part of this replica's share of `S` in cluster mode
    /// (``ProxyHandler/withRoom(_:)``).
    func slotShare(maxConcurrency: Int, loops: Int) -> Int {
        let capacity = publishedCapacity.load(ordering: .relaxed)
        guard capacity > 0 else { return .max }
        let share = Double(publishedSlots.load(ordering: .relaxed)) * Double(maxConcurrency) / Double(capacity) / Double(max(1, loops))
        return max(1, Int(share.rounded(.up)))
    }

    /// A reload: new limits and switches. Slots held and waiters stay; buckets whose
    /// settings did not change keep their tokens; waiters the new settings admit are
    /// resumed, those beyond a smaller queue are shed as `overloaded`.
    func reconfigure(config: GatewayConfig, now: MonotonicTime, jitter: Double = Double.random(in: 0..<1)) {
        let (admitted, rejected, retry): ([Waiter], [Waiter], Int) = state.withLock { state in
            let (admitted, rejected) = state.take(state.checks.reconfigure(config: config, now: now))
            publish(state.checks.controller)
            return (admitted, rejected, RetryAfter.seconds(state.checks.controller.drainEstimate, jitter: jitter))
        }
        resume(admitted: admitted, rejected: rejected, Rejection(reason: .overloaded, retryAfterSeconds: retry))
    }

    /// `Retry-After` base for `no_healthy_upstream`.
    var recoveryEstimate: Duration { state.withLock { $0.checks.recoveryEstimate } }

    /// The checks in their order (``AdmissionChecks/arrive(clientKey:priority:now:jitter:)``).
    /// `waiter` is called only when the request is queued: the common paths (admit,
    /// reject) build no callback.
    func admit(
        clientKey: ClientKey, priority: Priority, now: MonotonicTime, jitter: Double,
        waiter makeWaiter: () -> (loop: any EventLoop, resume: @Sendable (Resumption) -> Void)
    ) -> Verdict {
        let (verdict, outcome): (Verdict, AdmissionChecks.Outcome) = state.withLock { state in
            let outcome = state.checks.arrive(clientKey: clientKey, priority: priority, now: now, jitter: jitter)
            switch outcome.decision {
            case .admitted:
                return (.admitted, outcome)
            case .queued(let id, let deadline):
                let (loop, resume) = makeWaiter()
                state.waiters[id] = Waiter(loop: loop, resume: resume)
                return (.queued(id: id, deadline: deadline), outcome)
            case .rejected(let rejection):
                return (.rejected(rejection), outcome)
            }
        }
        if let wouldShed = outcome.wouldShed { noteDryRun(wouldShed, now: now) }
        if outcome.fetchTokens || outcome.renewShare, let hooks = clusterHooks.withLock({ $0 }) {
            if outcome.fetchTokens { hooks.fetchTokens() }
            if outcome.renewShare { hooks.renewShare() }
        }
        return verdict
    }

    /// What ``admit(clientKey:priority:now:jitter:waiter:)`` would refuse now, taking
    /// nothing (``AdmissionChecks/preview(clientKey:priority:now:jitter:)``).
    func preview(clientKey: ClientKey, priority: Priority, now: MonotonicTime, jitter: Double) -> Rejection? {
        state.withLock { $0.checks.preview(clientKey: clientKey, priority: priority, now: now, jitter: jitter) }
    }

    // MARK: Cluster mode (ClusterAgent)

    /// Where the shared bucket's batches and early lease renewals come from (the cluster
    /// agent); called at most once per batch, and per ask (``AdmissionChecks/Outcome/renewShare``);
    /// never waited for.
    func setClusterHooks(_ hooks: ClusterHooks) {
        clusterHooks.withLock { $0 = hooks }
    }

    /// What the cluster agent reports at a renewal (``AdmissionChecks/takeClusterReport(scheduled:)``).
    func takeClusterDemand(scheduled: Bool = true) -> (demand: Int, fullSlots: Int, inFlight: Int) {
        state.withLock { $0.checks.takeClusterReport(scheduled: scheduled) }
    }

    /// `S` as this replica sees it.
    var fullSlots: Int { state.withLock { $0.checks.controller.fullSlots } }

    /// The next request that waits or is refused for capacity may ask for an early renewal again.
    func listenForRenewal() { state.withLock { $0.checks.listenForRenewal() } }

    /// An in-place upgrade's new process serves: each slot freed here asks for a renewal
    /// (``AdmissionChecks/handOver()``).
    func handOver() { state.withLock { $0.checks.handOver() } }

    /// This replica's share of `S` changed (a lease, or the fallback when Redis is gone).
    func setShare(_ share: LeasePlanner.Share?, jitter: Double = Double.random(in: 0..<1)) {
        let (admitted, rejected, retry): ([Waiter], [Waiter], Int) = state.withLock { state in
            let (admitted, rejected) = state.take(state.checks.controller.setShare(share))
            publish(state.checks.controller)
            return (admitted, rejected, RetryAfter.seconds(state.checks.controller.drainEstimate, jitter: jitter))
        }
        resume(admitted: admitted, rejected: rejected, Rejection(reason: .overloaded, retryAfterSeconds: retry))
    }

    /// A batch from the shared bucket arrived.
    func tokensFetched(granted: Int, wait: Duration, replicas: Int, now: MonotonicTime) {
        state.withLock { state in
            guard case .shared(var bucket)? = state.checks.global else { return }
            bucket.fetched(granted: granted, wait: wait, replicas: replicas, now: now)
            state.checks.global = .shared(bucket)
        }
    }

    /// A batch could not be fetched: the shared bucket falls back (`on_store_failure`).
    func tokenFetchFailed(replicas: Int, now: MonotonicTime) {
        state.withLock { state in
            guard case .shared(var bucket)? = state.checks.global else { return }
            bucket.fetchFailed(replicas: replicas, now: now)
            state.checks.global = .shared(bucket)
        }
    }

    /// A copy of the shared bucket (its settings, mode and stock), for the cluster agent,
    /// `/stats` and metrics; nil outside cluster mode or without a global limit.
    var sharedGlobal: SharedTokenBucket? {
        state.withLock { state in
            guard case .shared(let bucket)? = state.checks.global else { return nil }
            return bucket
        }
    }

    /// What the rate limits hold now, for `/stats` and `/metrics`.
    struct RateLimitReading: Sendable, Equatable {
        /// Whole global tokens available (cluster mode: the local stock); nil without a global limit.
        var globalTokens: Int?
        var clientsTracked = 0
        var clientsEvicted = 0
    }

    func rateLimitReading(at now: MonotonicTime) -> RateLimitReading {
        state.withLock { state in
            RateLimitReading(
                globalTokens: state.checks.globalTokens(now: now), clientsTracked: state.checks.perClient?.count ?? 0,
                clientsEvicted: state.checks.perClientEvictions)
        }
    }

    /// An admitted request finished (or `count` slots at once: ``releaseGivenBack(count:now:)``);
    /// frees its slot and resumes waiters it admits.
    func release(count: Int = 1, serviceTime: Duration?, now: MonotonicTime) {
        let (resumed, renew): ([Waiter]?, Bool) = state.withLock { state in
            let (admitted, renew) = state.checks.release(count: count, serviceTime: serviceTime, now: now)
            // Nobody waiting (nearly always): no list built or walked — an empty one is
            // still a retain and a release each time.
            return (admitted.isEmpty ? nil : admitted.compactMap { state.waiters.removeValue(forKey: $0) }, renew)
        }
        if let resumed { for waiter in resumed { waiter.loop.execute { waiter.resume(.admitted) } } }
        if renew, let hooks = clusterHooks.withLock({ $0 }) { hooks.renewShare() }
    }

    /// `count` slots given back by requests whose upstream left rotation
    /// (``UpstreamSlotHolders``): freed as ``release(serviceTime:now:)`` frees one, with
    /// no service time (those requests have not ended), resuming the waiters they admit.
    func releaseGivenBack(count: Int, now: MonotonicTime) {
        guard count > 0 else { return }
        state.withLock { $0.givenBack += count }
        release(count: count, serviceTime: nil, now: now)
    }

    /// Answers every waiter whose deadline passed with `queue_timeout`.
    func expire(now: MonotonicTime, jitter: Double) {
        let (expired, rejection): ([Waiter], Rejection) = state.withLock { state in
            let ids = state.checks.controller.expire(now: now)
            return (ids.compactMap { state.waiters.removeValue(forKey: $0) }, state.queueTimeout(jitter: jitter))
        }
        for waiter in expired {
            waiter.loop.execute { waiter.resume(.rejected(rejection)) }
        }
    }

    /// The ready upstreams' capacity changed (docs/CONFIGURATION.md, "Admission control": C shrinks at once when an
    /// upstream goes down). Waiters the new slots admit are resumed; waiters beyond the
    /// new queue bound are shed as `overloaded`, lowest class and newest first.
    func setCapacity(_ capacity: Int, jitter: Double) {
        let (admitted, rejected, retry): ([Waiter], [Waiter], Int) = state.withLock { state in
            let (admitted, rejected) = state.take(state.checks.controller.setCapacity(capacity))
            publish(state.checks.controller)
            let wait = state.checks.controller.capacity > 0 ? state.checks.controller.drainEstimate : state.checks.recoveryEstimate
            return (admitted, rejected, RetryAfter.seconds(wait, jitter: jitter))
        }
        resume(
            admitted: admitted, rejected: rejected,
            Rejection(reason: capacity > 0 ? .overloaded : .noHealthyUpstream, retryAfterSeconds: retry))
    }

    private func resume(admitted: [Waiter], rejected: [Waiter], _ rejection: Rejection) {
        for waiter in admitted { waiter.loop.execute { waiter.resume(.admitted) } }
        for waiter in rejected { waiter.loop.execute { waiter.resume(.rejected(rejection)) } }
    }

    /// The answer to a queued request whose wait ended elsewhere (`timeouts.request`), as
    /// ``expire(now:jitter:)`` answers the queue's own timeouts; its place is given back
    /// by ``cancel(id:)`` when its exchange ends.
    func queueTimeout(jitter: Double) -> Rejection {
        state.withLock { $0.queueTimeout(jitter: jitter) }
    }

    /// A queued request's client went away.
    func cancel(id: Int) {
        state.withLock { state in
            if state.checks.controller.cancel(id: id) { state.waiters.removeValue(forKey: id) }
        }
    }

    struct Snapshot: Sendable, Equatable {
        var capacity: Int
        /// This replica's running slots (its share of `fullSlots` in cluster mode).
        var slots: Int
        var fullSlots: Int
        /// `slots`, or in cluster mode the share this replica is due (``AdmissionController/dueSlots``).
        var dueSlots: Int
        var queueLimit: Int
        var inFlight: Int
        var queued: Int
        /// Requests admitted so far (``AdmissionController/admittedTotal``).
        var admitted = 0
        /// The controller's `(running + queued) / C` (in cluster mode against this replica's part of `C`).
        var utilization: Double
        /// The standing-queue rule holds waits to `admission.queue_delay_target`.
        var standing = false
        /// Slots given back by requests on upstreams that left rotation (``UpstreamSlotHolders``), so far.
        var givenBack = 0
    }

    var snapshot: Snapshot { snapshot(at: MonotonicTime.current) }

    /// The snapshot as of `now` (whether the queue still stands depends on the time).
    func snapshot(at now: MonotonicTime) -> Snapshot {
        state.withLock { state in
            let c = state.checks.controller
            return Snapshot(
                capacity: c.capacity, slots: c.slots, fullSlots: c.fullSlots, dueSlots: c.dueSlots, queueLimit: c.queueLimit, inFlight: c.inFlight,
                queued: c.queued, admitted: c.admittedTotal, utilization: c.utilization, standing: c.isStanding(at: now),
                givenBack: state.givenBack)
        }
    }

    private func noteDryRun(_ reason: ShedReason, now: MonotonicTime) {
        dryRun.count(reason)
        guard dryRunLog.allow(now: now) else { return }
        logger.info(
            "dry run: would have shed",
            metadata: ["reason": "\(reason.rawValue)", "would_shed_total": "\(dryRun.total)"])
    }
}

/// Requests a dry run would have shed, by reason (one relaxed atomic add each).
final class DryRunCounters: Sendable {
    private let values: [Counter] = ShedReason.allCases.map { _ in Counter() }

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    func count(_ reason: ShedReason) { values[reason.index].value.wrappingAdd(1, ordering: .relaxed) }
    func count(of reason: ShedReason) -> Int { values[reason.index].value.load(ordering: .relaxed) }
    /// By reason, in `ShedReason.allCases` order.
    var counts: [Int] { values.map { $0.value.load(ordering: .relaxed) } }
    var total: Int { counts.reduce(0, +) }
}
