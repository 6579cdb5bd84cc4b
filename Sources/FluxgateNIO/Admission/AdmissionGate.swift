import FluxgateCore
import Logging
import NIOCore
import Synchronization

/// The shell around the admission decisions, shared by every event loop.
///
/// One short critical section per request on the way in (client bucket, global
/// bucket, ``AdmissionController``) and one on the way out (release, which may admit
/// waiters). Waiters are resumed on their own event loop. The decision types know no
/// HTTP; this type knows no HTTP either — ``ProxyHandler`` turns rejections into
/// 429/503 answers.
final class AdmissionGate: Sendable {
    /// A refusal with what the client needs to come back at the right time.
    struct Rejection: Sendable, Equatable {
        var reason: ShedReason
        var retryAfterSeconds: Int
        /// For 429: the per-client policy, for `RateLimit-Policy` / `RateLimit`.
        var policy: RateLimitPolicy?
    }

    struct RateLimitPolicy: Sendable, Equatable {
        var quota: Int
        var windowSeconds: Int
    }

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

    /// The global bucket: this process's own, or in cluster mode the local stock of the
    /// one kept in Redis.
    private enum GlobalLimit {
        case local(TokenBucket)
        case shared(SharedTokenBucket)
    }

    private struct State {
        var controller: AdmissionController
        var global: GlobalLimit?
        var clusterMode: Bool
        var fallbackReplicas: Int
        /// Refused by the utilization rule since the cluster agent last asked (its demand signal).
        var refusedForCapacity = 0
        var perClient: KeyedLimiter<String>?
        var waiters: [Int: Waiter] = [:]
        var nextID = 0
        /// The rate-limit settings the buckets were built from, and the dry-run switches.
        var settings: RateLimitConfig
        var admissionDryRun: Bool
        var perClientPolicy: RateLimitPolicy
        /// `Retry-After` base for `no_healthy_upstream`: when an upstream can be back at the earliest.
        var recoveryEstimate: Duration

        init(config: GatewayConfig, capacity: Int, now: MonotonicTime) {
            controller = AdmissionController(capacity: capacity, settings: config.admission.controllerSettings)
            settings = config.rateLimit
            admissionDryRun = config.admission.dryRun
            perClientPolicy = RateLimitPolicy(perClient: config.rateLimit.perClient)
            recoveryEstimate = config.healthCheck.recoveryEstimate
            clusterMode = config.cluster.enabled
            fallbackReplicas = config.cluster.fallbackReplicas
            rebuildBuckets(previous: nil, now: now)
        }

        /// The waiters a controller change admitted and shed, taken out of the table.
        mutating func take(_ change: (admitted: [Int], rejected: [Int])) -> (admitted: [Waiter], rejected: [Waiter]) {
            (change.admitted.compactMap { waiters.removeValue(forKey: $0) }, change.rejected.compactMap { waiters.removeValue(forKey: $0) })
        }

        /// Gives back the global token taken for a request a later check refused.
        mutating func refundGlobalToken() {
            switch global {
            case .local(var bucket)?:
                bucket.refund()
                global = .local(bucket)
            case .shared(var bucket)?:
                bucket.refund()
                global = .shared(bucket)
            case nil:
                break
            }
        }

        /// New buckets for limits that changed (or appeared); unchanged ones keep their tokens.
        mutating func rebuildBuckets(previous: RateLimitConfig?, now: MonotonicTime) {
            let global = settings.global
            if previous.map({ $0.global != global }) ?? true {
                if !global.enabled {
                    self.global = nil
                } else if clusterMode {
                    self.global = .shared(
                        SharedTokenBucket(
                            rate: global.rate, burst: global.burst, batchFraction: global.batch, onStoreFailure: global.onStoreFailure,
                            replicas: fallbackReplicas))
                } else {
                    self.global = .local(TokenBucket(rate: global.rate, burst: global.burst, now: now))
                }
            }
            let client = settings.perClient
            if previous.map({
                $0.perClient.enabled != client.enabled || $0.perClient.rate != client.rate || $0.perClient.burst != client.burst
                    || $0.perClient.maxClients != client.maxClients || $0.perClient.key != client.key
            }) ?? true {
                perClient = client.enabled ? KeyedLimiter(rate: client.rate, burst: client.burst, capacity: client.maxClients) : nil
            }
        }
    }

    private let state: Mutex<State>
    /// Cluster mode: asks the cluster agent for a batch of tokens (set once at start).
    private let tokenSource = Mutex<(@Sendable () -> Void)?>(nil)
    /// What dry runs would have shed (real sheds are counted where each exchange ends).
    let dryRun = DryRunCounters()
    private let logger: Logger
    /// A dry run under real overload must not flood the log.
    private let dryRunLog = LogThrottle()

    init(config: GatewayConfig, capacity: Int, now: MonotonicTime, logger: Logger) {
        self.logger = logger
        self.state = Mutex(State(config: config, capacity: capacity, now: now))
    }

    /// A reload: new limits and switches. Slots held and waiters stay; buckets whose
    /// settings did not change keep their tokens; waiters the new settings admit are
    /// resumed, those beyond a smaller queue are shed as `overloaded`.
    func reconfigure(config: GatewayConfig, now: MonotonicTime, jitter: Double = Double.random(in: 0..<1)) {
        let (admitted, rejected, retry): ([Waiter], [Waiter], Int) = state.withLock { state in
            let previous = state.settings
            state.settings = config.rateLimit
            state.admissionDryRun = config.admission.dryRun
            state.perClientPolicy = RateLimitPolicy(perClient: config.rateLimit.perClient)
            state.recoveryEstimate = config.healthCheck.recoveryEstimate
            state.rebuildBuckets(previous: previous, now: now)
            let (admitted, rejected) = state.take(state.controller.update(settings: config.admission.controllerSettings))
            return (admitted, rejected, RetryAfter.seconds(state.controller.drainEstimate, jitter: jitter))
        }
        resume(admitted: admitted, rejected: rejected, Rejection(reason: .overloaded, retryAfterSeconds: retry))
    }

    /// `Retry-After` base for `no_healthy_upstream`.
    var recoveryEstimate: Duration { state.withLock { $0.recoveryEstimate } }

    /// Checks the per-client bucket, the global bucket and the utilization rule, in that order.
    /// `waiter` is called only when the request is queued: the common paths (admit,
    /// reject) build no callback.
    func admit(
        clientKey: String, priority: Priority, now: MonotonicTime, jitter: Double,
        waiter makeWaiter: () -> (loop: any EventLoop, resume: @Sendable (Resumption) -> Void)
    ) -> Verdict {
        var wouldShed: ShedReason? = nil
        var fetchTokens = false
        let verdict: Verdict = state.withLock { state in
            // Tokens taken here are given back when a later check refuses the request
            // (`refundTokens`): a refused request costs no rate, as with nginx's
            // `limit_req` zones, and a shed for capacity does not eat the global rate.
            var tookClientToken = false
            switch state.perClient?.take(clientKey, now: now) {
            case .denied(let wait)?:
                let rejection = Rejection(
                    reason: .clientRateLimited, retryAfterSeconds: RetryAfter.seconds(wait), policy: state.perClientPolicy)
                if !state.settings.perClient.dryRun { return .rejected(rejection) }
                wouldShed = .clientRateLimited
            case .allowed?: tookClientToken = true
            case nil: break
            }
            var globalDecision: TokenBucket.Decision? = nil
            switch state.global {
            case .local(var bucket)?:
                globalDecision = bucket.take(now: now)
                state.global = .local(bucket)
            case .shared(var bucket)?:
                (globalDecision, fetchTokens) = bucket.take(now: now)
                state.global = .shared(bucket)
            case nil:
                break
            }
            var tookGlobalToken = false
            switch globalDecision {
            case .denied(let wait)?:
                if !state.settings.global.dryRun {
                    if tookClientToken { state.perClient?.refund(clientKey) }
                    return .rejected(Rejection(reason: .rateLimited, retryAfterSeconds: RetryAfter.seconds(wait)))
                }
                wouldShed = wouldShed ?? .rateLimited
            case .allowed?: tookGlobalToken = true
            case nil: break
            }
            let id = state.nextID
            state.nextID &+= 1
            switch state.controller.arrive(id: id, priority: priority, now: now) {
            case .admit:
                return .admitted
            case .enqueue(let deadline):
                if state.admissionDryRun {
                    // Dry run delays nothing either: take the request out of the queue again.
                    _ = state.controller.cancel(id: id)
                    state.controller.forceAdmit()
                    wouldShed = wouldShed ?? .overloaded
                    return .admitted
                }
                let (loop, resume) = makeWaiter()
                state.waiters[id] = Waiter(loop: loop, resume: resume)
                return .queued(id: id, deadline: deadline)
            case .reject(let reason):
                if state.admissionDryRun && reason != .noHealthyUpstream {
                    state.controller.forceAdmit()
                    wouldShed = wouldShed ?? reason
                    return .admitted
                }
                if reason == .overloaded { state.refusedForCapacity += 1 }
                if tookClientToken { state.perClient?.refund(clientKey) }
                if tookGlobalToken { state.refundGlobalToken() }
                let wait = reason == .noHealthyUpstream ? state.recoveryEstimate : state.controller.drainEstimate
                return .rejected(Rejection(reason: reason, retryAfterSeconds: RetryAfter.seconds(wait, jitter: jitter)))
            }
        }
        if let wouldShed { noteDryRun(wouldShed, now: now) }
        if fetchTokens, let source = tokenSource.withLock({ $0 }) { source() }
        return verdict
    }

    // MARK: Cluster mode (ClusterAgent)

    /// Where the shared bucket's batches come from (the cluster agent); called at most
    /// once per batch, never waited for.
    func setTokenSource(_ source: @escaping @Sendable () -> Void) {
        tokenSource.withLock { $0 = source }
    }

    /// What the cluster agent reports each round: demand (running + queued + refused for
    /// capacity since the last call), `S` as this replica sees it, and running.
    func takeClusterDemand() -> (demand: Int, fullSlots: Int, inFlight: Int) {
        state.withLock { state in
            let c = state.controller
            let demand = c.inFlight + c.queued + state.refusedForCapacity
            state.refusedForCapacity = 0
            return (demand, c.fullSlots, c.inFlight)
        }
    }

    /// This replica's share of `S` changed (a lease, or the fallback when Redis is gone).
    func setShare(_ share: LeasePlanner.Share?, jitter: Double = Double.random(in: 0..<1)) {
        let (admitted, rejected, retry): ([Waiter], [Waiter], Int) = state.withLock { state in
            let (admitted, rejected) = state.take(state.controller.setShare(share))
            return (admitted, rejected, RetryAfter.seconds(state.controller.drainEstimate, jitter: jitter))
        }
        resume(admitted: admitted, rejected: rejected, Rejection(reason: .overloaded, retryAfterSeconds: retry))
    }

    /// A batch from the shared bucket arrived.
    func tokensFetched(granted: Int, wait: Duration, replicas: Int, now: MonotonicTime) {
        state.withLock { state in
            guard case .shared(var bucket)? = state.global else { return }
            bucket.fetched(granted: granted, wait: wait, replicas: replicas, now: now)
            state.global = .shared(bucket)
        }
    }

    /// A batch could not be fetched: the shared bucket falls back (`on_store_failure`).
    func tokenFetchFailed(replicas: Int, now: MonotonicTime) {
        state.withLock { state in
            guard case .shared(var bucket)? = state.global else { return }
            bucket.fetchFailed(replicas: replicas, now: now)
            state.global = .shared(bucket)
        }
    }

    /// A copy of the shared bucket (its settings, mode and stock), for the cluster agent,
    /// `/stats` and metrics; nil outside cluster mode or without a global limit.
    var sharedGlobal: SharedTokenBucket? {
        state.withLock { state in
            guard case .shared(let bucket)? = state.global else { return nil }
            return bucket
        }
    }

    /// An admitted request finished; frees its slot and resumes waiters it admits.
    func release(serviceTime: Duration?, now: MonotonicTime) {
        let resumed: [Waiter] = state.withLock { state in
            state.controller.release(serviceTime: serviceTime, now: now).compactMap { state.waiters.removeValue(forKey: $0) }
        }
        for waiter in resumed { waiter.loop.execute { waiter.resume(.admitted) } }
    }

    /// Answers every waiter whose deadline passed with `queue_timeout`.
    func expire(now: MonotonicTime, jitter: Double) {
        let (expired, retry): ([Waiter], Int) = state.withLock { state in
            let ids = state.controller.expire(now: now)
            return (ids.compactMap { state.waiters.removeValue(forKey: $0) }, RetryAfter.seconds(state.controller.drainEstimate, jitter: jitter))
        }
        let rejection = Rejection(reason: .queueTimeout, retryAfterSeconds: retry)
        for waiter in expired {
            waiter.loop.execute { waiter.resume(.rejected(rejection)) }
        }
    }

    /// The ready upstreams' capacity changed (SPEC §4: C shrinks at once when an
    /// upstream goes down). Waiters the new slots admit are resumed; waiters beyond the
    /// new queue bound are shed as `overloaded`, lowest class and newest first.
    func setCapacity(_ capacity: Int, jitter: Double) {
        let (admitted, rejected, retry): ([Waiter], [Waiter], Int) = state.withLock { state in
            let (admitted, rejected) = state.take(state.controller.setCapacity(capacity))
            let wait = state.controller.capacity > 0 ? state.controller.drainEstimate : state.recoveryEstimate
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

    /// A queued request's client went away.
    func cancel(id: Int) {
        state.withLock { state in
            if state.controller.cancel(id: id) { state.waiters.removeValue(forKey: id) }
        }
    }

    struct Snapshot: Sendable, Equatable {
        var capacity: Int
        /// This replica's running slots (its share of `fullSlots` in cluster mode).
        var slots: Int
        var fullSlots: Int
        var queueLimit: Int
        var inFlight: Int
        var queued: Int
        /// The controller's `(running + queued) / C` (in cluster mode against this replica's part of `C`).
        var utilization: Double
        /// The standing-queue rule holds waits to `admission.queue_delay_target`.
        var standing = false
    }

    var snapshot: Snapshot { snapshot(at: MonotonicTime.current) }

    /// The snapshot as of `now` (whether the queue still stands depends on the time).
    func snapshot(at now: MonotonicTime) -> Snapshot {
        state.withLock { state in
            let c = state.controller
            return Snapshot(
                capacity: c.capacity, slots: c.slots, fullSlots: c.fullSlots, queueLimit: c.queueLimit, inFlight: c.inFlight,
                queued: c.queued, utilization: c.utilization, standing: c.isStanding(at: now))
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

extension AdmissionGate.RateLimitPolicy {
    init(perClient: RateLimitConfig.PerClientLimit) {
        self.init(quota: perClient.burst, windowSeconds: max(1, Int((Double(perClient.burst) / perClient.rate).rounded(.up))))
    }
}
