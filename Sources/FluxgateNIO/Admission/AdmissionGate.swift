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

    private struct State {
        var controller: AdmissionController
        var global: TokenBucket?
        var perClient: KeyedLimiter<String>?
        var waiters: [Int: Waiter] = [:]
        var nextID = 0
    }

    private let state: Mutex<State>
    private let settings: RateLimitConfig
    private let admissionDryRun: Bool
    private let perClientPolicy: RateLimitPolicy
    let counters = ShedCounters()
    private let logger: Logger
    /// `Retry-After` base for `no_healthy_upstream`: when an upstream can be back at the earliest.
    let recoveryEstimate: Duration
    private let lastDryRunLog = Atomic<Int64>(.min)

    init(config: GatewayConfig, capacity: Int, now: MonotonicTime, logger: Logger) {
        let rate = config.rateLimit
        self.settings = rate
        self.admissionDryRun = config.admission.dryRun
        self.logger = logger
        self.recoveryEstimate = config.healthCheck.recoveryEstimate
        self.perClientPolicy = RateLimitPolicy(
            quota: rate.perClient.burst, windowSeconds: max(1, Int((Double(rate.perClient.burst) / rate.perClient.rate).rounded(.up))))
        self.state = Mutex(
            State(
                controller: AdmissionController(capacity: capacity, settings: config.admission.controllerSettings),
                global: rate.global.enabled ? TokenBucket(rate: rate.global.rate, burst: rate.global.burst, now: now) : nil,
                perClient: rate.perClient.enabled
                    ? KeyedLimiter(rate: rate.perClient.rate, burst: rate.perClient.burst, capacity: rate.perClient.maxClients) : nil))
    }

    /// Checks the per-client bucket, the global bucket and the utilization rule, in that order.
    /// `waiter` is called only when the request is queued: the common paths (admit,
    /// reject) build no callback.
    func admit(
        clientKey: String, priority: Priority, now: MonotonicTime, jitter: Double,
        waiter makeWaiter: () -> (loop: any EventLoop, resume: @Sendable (Resumption) -> Void)
    ) -> Verdict {
        var wouldShed: ShedReason? = nil
        let verdict: Verdict = state.withLock { state in
            if case .denied(let wait)? = state.perClient?.take(clientKey, now: now) {
                let rejection = Rejection(
                    reason: .clientRateLimited, retryAfterSeconds: RetryAfter.seconds(wait), policy: perClientPolicy)
                if !settings.perClient.dryRun { return .rejected(rejection) }
                wouldShed = .clientRateLimited
            }
            if case .denied(let wait)? = state.global?.take(now: now) {
                if !settings.global.dryRun {
                    return .rejected(Rejection(reason: .rateLimited, retryAfterSeconds: RetryAfter.seconds(wait)))
                }
                wouldShed = wouldShed ?? .rateLimited
            }
            let id = state.nextID
            state.nextID &+= 1
            switch state.controller.arrive(id: id, priority: priority, now: now) {
            case .admit:
                return .admitted
            case .enqueue(let deadline):
                if admissionDryRun {
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
                if admissionDryRun && reason != .noHealthyUpstream {
                    state.controller.forceAdmit()
                    wouldShed = wouldShed ?? reason
                    return .admitted
                }
                let wait = reason == .noHealthyUpstream ? recoveryEstimate : state.controller.drainEstimate
                return .rejected(Rejection(reason: reason, retryAfterSeconds: RetryAfter.seconds(wait, jitter: jitter)))
            }
        }
        switch verdict {
        case .rejected(let rejection): counters.shed(rejection.reason)
        case .admitted, .queued: break
        }
        if let wouldShed { noteDryRun(wouldShed, now: now) }
        return verdict
    }

    /// An admitted request finished; frees its slot and resumes waiters it admits.
    func release(serviceTime: Duration?) {
        let resumed: [Waiter] = state.withLock { state in
            state.controller.release(serviceTime: serviceTime).compactMap { state.waiters.removeValue(forKey: $0) }
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
            counters.shed(.queueTimeout)
            waiter.loop.execute { waiter.resume(.rejected(rejection)) }
        }
    }

    /// The ready upstreams' capacity changed (SPEC §4: C shrinks at once when an
    /// upstream goes down). Waiters the new slots admit are resumed; waiters beyond the
    /// new queue bound are shed as `overloaded`, lowest class and newest first.
    func setCapacity(_ capacity: Int, jitter: Double) {
        let (admitted, rejected, retry): ([Waiter], [Waiter], Int) = state.withLock { state in
            let (admit, reject) = state.controller.setCapacity(capacity)
            let wait = state.controller.capacity > 0 ? state.controller.drainEstimate : recoveryEstimate
            return (
                admit.compactMap { state.waiters.removeValue(forKey: $0) },
                reject.compactMap { state.waiters.removeValue(forKey: $0) },
                RetryAfter.seconds(wait, jitter: jitter))
        }
        for waiter in admitted { waiter.loop.execute { waiter.resume(.admitted) } }
        let rejection = Rejection(reason: capacity > 0 ? .overloaded : .noHealthyUpstream, retryAfterSeconds: retry)
        for waiter in rejected {
            counters.shed(rejection.reason)
            waiter.loop.execute { waiter.resume(.rejected(rejection)) }
        }
    }

    /// A queued request's client went away.
    func cancel(id: Int) {
        state.withLock { state in
            if state.controller.cancel(id: id) { state.waiters.removeValue(forKey: id) }
        }
    }

    struct Snapshot: Sendable, Equatable {
        var capacity: Int
        var slots: Int
        var queueLimit: Int
        var inFlight: Int
        var queued: Int
    }

    var snapshot: Snapshot {
        state.withLock { state in
            let c = state.controller
            return Snapshot(capacity: c.capacity, slots: c.slots, queueLimit: c.queueLimit, inFlight: c.inFlight, queued: c.queued)
        }
    }

    private func noteDryRun(_ reason: ShedReason, now: MonotonicTime) {
        counters.wouldShed(reason)
        let last = lastDryRunLog.load(ordering: .relaxed)
        // At most one line a second: a dry run under real overload must not flood the log.
        guard last == .min || now.nanoseconds &- last >= 1_000_000_000,
            lastDryRunLog.compareExchange(expected: last, desired: now.nanoseconds, ordering: .relaxed).exchanged
        else { return }
        logger.info(
            "dry run: would have shed",
            metadata: ["reason": "\(reason.rawValue)", "would_shed_total": "\(counters.wouldShedTotal)"])
    }
}

/// Shed counts by reason, real and dry-run (later exported as metrics).
final class ShedCounters: Sendable {
    private let counts = Mutex<(shed: [Int], wouldShed: [Int])>(
        (Array(repeating: 0, count: ShedReason.allCases.count), Array(repeating: 0, count: ShedReason.allCases.count)))

    private static func index(_ reason: ShedReason) -> Int { ShedReason.allCases.firstIndex(of: reason)! }

    func shed(_ reason: ShedReason) { counts.withLock { $0.shed[Self.index(reason)] += 1 } }
    func wouldShed(_ reason: ShedReason) { counts.withLock { $0.wouldShed[Self.index(reason)] += 1 } }
    func shedCount(_ reason: ShedReason) -> Int { counts.withLock { $0.shed[Self.index(reason)] } }
    func wouldShedCount(_ reason: ShedReason) -> Int { counts.withLock { $0.wouldShed[Self.index(reason)] } }
    var wouldShedTotal: Int { counts.withLock { $0.wouldShed.reduce(0, +) } }
}
