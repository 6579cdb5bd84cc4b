/// The admission checks in their order, with their dry-run switches: the per-client
/// token bucket (429 `client_rate_limited`), the global token bucket (503
/// `rate_limited`), then the utilization rule (``AdmissionController``). A request
/// refused by a later check gets back the tokens the earlier ones took, as nginx rolls
/// back its earlier `limit_req` zones when a later one rejects: a shed for capacity
/// costs its client no rate, and the gateway no global rate (without that, cluster
/// replicas under both limits admitted 0.86-0.90x the global rate — docs/SCALING.md).
///
/// | per-client | global | utilization rule | answer | tokens kept |
/// |---|---|---|---|---|
/// | empty | — | — | 429 | none taken |
/// | token | empty | — | 503 `rate_limited` | none (the client's given back) |
/// | token | token | refuses | 503 `overloaded` / `no_healthy_upstream` | none (both given back) |
/// | token | token | admits or queues | — | both |
///
/// A limiter in dry run counts what it would have refused (``Outcome/wouldShed``, the
/// first such reason) and lets the request through. Pure: time and jitter are passed
/// in; ``AdmissionGate`` (FluxgateNIO) holds it under a lock and parks the waiters.
public struct AdmissionChecks: Sendable {
    /// A refusal with what the client needs to come back at the right time.
    public struct Rejection: Sendable, Equatable {
        public var reason: ShedReason
        public var retryAfterSeconds: Int
        /// For 429: the per-client policy, for `RateLimit-Policy` / `RateLimit`.
        public var policy: RateLimitPolicy?

        public init(reason: ShedReason, retryAfterSeconds: Int, policy: RateLimitPolicy? = nil) {
            self.reason = reason
            self.retryAfterSeconds = retryAfterSeconds
            self.policy = policy
        }
    }

    /// The per-client limit as the IETF RateLimit headers state it.
    public struct RateLimitPolicy: Sendable, Equatable {
        public var quota: Int
        public var windowSeconds: Int

        public init(quota: Int, windowSeconds: Int) {
            self.quota = quota
            self.windowSeconds = windowSeconds
        }

        public init(perClient: RateLimitConfig.PerClientLimit) {
            self.init(quota: perClient.burst, windowSeconds: max(1, Int((Double(perClient.burst) / perClient.rate).rounded(.up))))
        }
    }

    public enum Decision: Sendable, Equatable {
        case admitted
        /// Waiting in the controller's queue as `id` until `deadline`.
        case queued(id: Int, deadline: MonotonicTime)
        case rejected(Rejection)
    }

    public struct Outcome: Sendable, Equatable {
        public var decision: Decision
        /// What a limiter in dry run would have refused (the first one), if any.
        public var wouldShed: ShedReason?
        /// Cluster mode: the shared bucket asks for its next batch now.
        public var fetchTokens: Bool
        /// Cluster mode: this request waits or is refused for capacity while this
        /// replica holds less than `S` — renew the lease now rather than at the next
        /// `sync_interval`, so slots free elsewhere arrive within a round trip to Redis
        /// (asked once until re-armed: ``takeClusterReport(scheduled:)``,
        /// ``listenForRenewal()``; the agent's ``RenewalPacing`` bounds how often).
        public var renewShare = false
    }

    /// The global bucket: this process's own, or in cluster mode the local stock of the
    /// one kept in Redis.
    public enum GlobalLimit: Sendable {
        case local(TokenBucket)
        case shared(SharedTokenBucket)
    }

    public var controller: AdmissionController
    public var global: GlobalLimit?
    public private(set) var perClient: KeyedLimiter<ClientKey>?
    /// Client buckets dropped (least recently used) at `per_client.max_clients` by the
    /// limiters a reload replaced: with the current one's, a count that never goes back.
    private var perClientEvictionsBefore = 0
    /// Refused by the utilization rule since the cluster agent last asked (its demand signal).
    public private(set) var refusedForCapacity = 0
    /// An early renewal was asked: no other is until the next scheduled renewal or
    /// ``listenForRenewal()``.
    public private(set) var renewalAsked = false
    /// Cluster mode: this process hands its place to an in-place upgrade's new process
    /// and drains (``handOver()``).
    public private(set) var handingOver = false
    /// The rate-limit settings the buckets were built from, and the dry-run switches.
    public private(set) var settings: RateLimitConfig
    public private(set) var admissionDryRun: Bool
    public private(set) var perClientPolicy: RateLimitPolicy
    /// `Retry-After` base for `no_healthy_upstream`: when an upstream can be back at the earliest.
    public private(set) var recoveryEstimate: Duration
    private let clusterMode: Bool
    private let fallbackReplicas: Int
    private var nextID = 0

    public init(config: GatewayConfig, capacity: Int, now: MonotonicTime) {
        controller = AdmissionController(capacity: capacity, settings: config.admission.controllerSettings)
        settings = config.rateLimit
        admissionDryRun = config.admission.dryRun
        perClientPolicy = RateLimitPolicy(perClient: config.rateLimit.perClient)
        recoveryEstimate = config.healthCheck.recoveryEstimate
        clusterMode = config.cluster.enabled
        fallbackReplicas = config.cluster.fallbackReplicas
        rebuildBuckets(previous: nil, now: now)
    }

    /// One request through the checks, in order. `jitter` in [0, 1) spreads the
    /// `Retry-After` of capacity sheds.
    public mutating func arrive(
        clientKey: ClientKey, priority: Priority, now: MonotonicTime, jitter: Double, recordWaiter: Bool = true
    ) -> Outcome {
        var outcome = Outcome(decision: .admitted, wouldShed: nil, fetchTokens: false)
        var tookClientToken = false
        switch perClient?.take(clientKey, now: now) {
        case .denied(let wait)?:
            let rejection = clientRejection(wait)
            if !settings.perClient.dryRun {
                outcome.decision = .rejected(rejection)
                return outcome
            }
            outcome.wouldShed = .clientRateLimited
        case .allowed?: tookClientToken = true
        case nil: break
        }
        var globalDecision: TokenBucket.Decision? = nil
        switch global {
        case .local(var bucket)?:
            globalDecision = bucket.take(now: now)
            global = .local(bucket)
        case .shared(var bucket)?:
            (globalDecision, outcome.fetchTokens) = bucket.take(now: now)
            global = .shared(bucket)
        case nil:
            break
        }
        var tookGlobalToken = false
        switch globalDecision {
        case .denied(let wait)?:
            if !settings.global.dryRun {
                if tookClientToken { perClient?.refund(clientKey) }
                outcome.decision = .rejected(Rejection(reason: .rateLimited, retryAfterSeconds: RetryAfter.seconds(wait)))
                return outcome
            }
            outcome.wouldShed = outcome.wouldShed ?? .rateLimited
        case .allowed?: tookGlobalToken = true
        case nil: break
        }
        let id = nextID
        nextID &+= 1
        switch controller.arrive(id: id, priority: priority, now: now, recordWaiter: recordWaiter) {
        case .admit:
            outcome.decision = .admitted
        case .enqueue(let deadline):
            if admissionDryRun {
                // Dry run delays nothing either: take the request out of the queue again.
                _ = controller.cancel(id: id)
                controller.forceAdmit()
                outcome.wouldShed = outcome.wouldShed ?? .overloaded
                outcome.decision = .admitted
            } else {
                outcome.decision = .queued(id: id, deadline: deadline)
                outcome.renewShare = askRenewalIfShort()
            }
        case .reject(let reason):
            if admissionDryRun && reason != .noHealthyUpstream {
                controller.forceAdmit()
                outcome.wouldShed = outcome.wouldShed ?? reason
                outcome.decision = .admitted
                return outcome
            }
            if reason == .overloaded {
                refusedForCapacity += 1
                outcome.renewShare = askRenewalIfShort()
            }
            if tookClientToken { perClient?.refund(clientKey) }
            if tookGlobalToken { refundGlobalToken() }
            let wait = reason == .noHealthyUpstream ? recoveryEstimate : controller.drainEstimate
            outcome.decision = .rejected(Rejection(reason: reason, retryAfterSeconds: RetryAfter.seconds(wait, jitter: jitter)))
        }
        return outcome
    }

    /// What ``arrive(clientKey:priority:now:jitter:)`` would refuse now, taking nothing:
    /// for a request whose client waits for `100 Continue` before it sends a body the
    /// gateway reads whole before admission (RFC 9110 §10.1.1). Refused now, it is
    /// answered at once and the body is never sent — as nginx answers `limit_req`
    /// before it reads a body; nil, the body is read and the request arrives when it is
    /// whole, as any other (and may still be refused then). The checks run on a copy —
    /// the buckets' and the controller's state stay as they were — that copies nothing
    /// large: the per-client table is asked for one key, and the queue is not appended
    /// to (a copy's append would copy the whole queue). A limiter in dry run
    /// refuses nothing; in cluster mode the shared bucket is not asked (its local stock
    /// is refilled only when arrivals ask for more).
    public func preview(clientKey: ClientKey, priority: Priority, now: MonotonicTime, jitter: Double) -> Rejection? {
        var rest = self
        if let perClient {
            rest.perClient = nil  // one key asked below, without copying the whole table
            if !settings.perClient.dryRun, case .denied(let wait) = perClient.peek(clientKey, now: now) {
                return clientRejection(wait)
            }
        }
        if case .shared? = global { rest.global = nil }
        let decision = rest.arrive(clientKey: clientKey, priority: priority, now: now, jitter: jitter, recordWaiter: false).decision
        guard case .rejected(let rejection) = decision else { return nil }
        return rejection
    }

    /// The 429 for a client whose bucket is empty for `wait` more.
    private func clientRejection(_ wait: Duration) -> Rejection {
        Rejection(reason: .clientRateLimited, retryAfterSeconds: RetryAfter.seconds(wait), policy: perClientPolicy)
    }

    /// Cluster mode, a request waits or is refused for capacity: whether to ask for an
    /// early renewal — when this replica holds less than `S` and has not asked yet.
    private mutating func askRenewalIfShort() -> Bool {
        guard clusterMode, !renewalAsked, controller.slots < controller.fullSlots else { return false }
        renewalAsked = true
        return true
    }

    /// What the cluster agent reports for a lease renewal: demand (running + queued +
    /// refused for capacity since the last report), `S` as this replica sees it, and
    /// running. A `scheduled` renewal (every `sync_interval`) lets the gate ask for an
    /// early one again (``Outcome/renewShare``); an early one does not (the agent's
    /// ``RenewalPacing`` says when it may: ``listenForRenewal()``).
    public mutating func takeClusterReport(scheduled: Bool) -> (demand: Int, fullSlots: Int, inFlight: Int) {
        let report = (controller.inFlight + controller.queued + refusedForCapacity, controller.fullSlots, controller.inFlight)
        refusedForCapacity = 0
        if scheduled { renewalAsked = false }
        return report
    }

    /// Lets the next request that waits or is refused for capacity ask for an early
    /// renewal again (``RenewalPacing/Next/listen``).
    public mutating func listenForRenewal() { renewalAsked = false }

    /// Cluster mode: an in-place upgrade's new process serves and this one drains. From
    /// now on a request that ends and frees its slot asks for an early renewal too
    /// (``release(serviceTime:now:)``), so the slot reaches the new process within a
    /// round trip to Redis rather than at the next `sync_interval`.
    public mutating func handOver() {
        handingOver = true
        renewalAsked = false
    }

    /// An admitted request finished — or `count` slots at once, given back by requests
    /// whose upstream left rotation (``UpstreamSlotHolders``): frees the slots and returns
    /// the waiters admitted into them, and whether to renew the lease now — handing over,
    /// when they stay free (no waiter took one) and no renewal was asked since the agent
    /// last listened.
    public mutating func release(count: Int = 1, serviceTime: Duration?, now: MonotonicTime) -> (admitted: [Int], renewShare: Bool) {
        var admitted = controller.release(serviceTime: serviceTime, now: now)
        for _ in 1..<max(1, count) {
            let more = controller.release(serviceTime: serviceTime, now: now)
            if !more.isEmpty { admitted += more }
        }
        guard handingOver, admitted.isEmpty, !renewalAsked else { return (admitted, false) }
        renewalAsked = true
        return (admitted, true)
    }

    /// A reload: new limits and switches; buckets whose settings did not change keep
    /// their tokens. Returns the controller's change (waiters admitted and shed).
    public mutating func reconfigure(config: GatewayConfig, now: MonotonicTime) -> (admitted: [Int], rejected: [Int]) {
        let previous = settings
        settings = config.rateLimit
        admissionDryRun = config.admission.dryRun
        perClientPolicy = RateLimitPolicy(perClient: config.rateLimit.perClient)
        recoveryEstimate = config.healthCheck.recoveryEstimate
        rebuildBuckets(previous: previous, now: now)
        return controller.update(settings: config.admission.controllerSettings)
    }

    /// Gives back the global token taken for a request a later check refused.
    private mutating func refundGlobalToken() {
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

    /// Client buckets dropped at `per_client.max_clients` since start. Each drop forgets
    /// a client that was limited — it comes back with a full burst — so a steady count
    /// says `max_clients` is below the clients seen (or that someone is rotating keys).
    public var perClientEvictions: Int { perClientEvictionsBefore + (perClient?.evictions ?? 0) }

    /// Whole global tokens available at `now` (in cluster mode the local stock of the
    /// shared bucket's); nil without a global limit. Takes none.
    public func globalTokens(now: MonotonicTime) -> Int? {
        switch global {
        case .local(var bucket)?: bucket.available(now: now)
        case .shared(let bucket)?: bucket.stock
        case nil: nil
        }
    }

    /// New buckets for limits that changed (or appeared); unchanged ones keep their tokens.
    private mutating func rebuildBuckets(previous: RateLimitConfig?, now: MonotonicTime) {
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
            perClientEvictionsBefore += perClient?.evictions ?? 0
            perClient = client.enabled ? KeyedLimiter(rate: client.rate, burst: client.burst, capacity: client.maxClients) : nil
        }
    }
}
