import DequeModule

/// Why a request was refused.
public enum ShedReason: String, Sendable, CaseIterable {
    /// Per-client token bucket empty → 429.
    case clientRateLimited = "client_rate_limited"
    /// Global token bucket empty → 503.
    case rateLimited = "rate_limited"
    /// Queue full, predicted wait too long, or the priority class's share used → 503.
    case overloaded
    /// Waited in the queue for `queue_timeout` → 503.
    case queueTimeout = "queue_timeout"
    /// No upstream ready (capacity 0) → 503.
    case noHealthyUpstream = "no_healthy_upstream"

    public var status: Int { self == .clientRateLimited ? 429 : 503 }
}

/// Route classes: low-priority traffic is shed first, critical last.
public enum Priority: String, Sendable, CaseIterable, Comparable {
    case critical, normal, low

    var rank: Int { self == .critical ? 0 : self == .normal ? 1 : 2 }
    public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rank < rhs.rank }
}

/// The 67 % rule (docs/CONFIGURATION.md, "Admission control"): a concurrency limit with a bounded, deadline-aware queue.
///
/// With `C` the summed `max_concurrency` of the ready upstreams and `u` the target
/// utilization: `S = floor(C × u)` requests run at once, `C − S` may wait. A request
/// is admitted while fewer than `S` run; otherwise it queues unless the queue is full,
/// its priority class's share is used up, or its predicted wait — its position ×
/// the observed per-slot service time — already exceeds `queue_timeout`.
///
/// | C | u | slots S | queue C − S |
/// |---|---|---|---|
/// | 5000 | 0.67 | 3350 | 1650 |
/// | 15000 | 0.67 | 10050 | 4950 |
/// | 100 | 0.5 | 50 | 50 |
/// | 3 | 0.67 | 2 | 1 |
///
/// Priority classes shed at a utilization `(running + queued) / C` of their own
/// (`shedAt`, defaults low 0.8, normal 0.95, critical 1.0), and the queue serves
/// critical before normal before low.
///
/// **Standing queue** (CoDel's idea, RFC 8289, applied to admission): a queue that
/// absorbs a burst is useful; a queue that stays full under sustained overload only
/// adds its wait to every admitted request without adding throughput (the slots are busy
/// either way). When every request taken from the queue for `queueDelayInterval` has
/// waited at least `queueDelayTarget`, the queue is *standing*: from then on a request
/// is queued only if its predicted wait is within the target, and waits at most the
/// target (`queue_timeout` no longer applies to it). The queue stops standing after a
/// whole interval in which the rule refused nobody — the load fits again. (Not at the
/// first free slot: completions come in bursts, and a queue held short drains in one,
/// so that signal would flip the rule off and on several times a second under steady
/// overload — measured.) Defaults 5 ms / 100 ms, as CoDel's; a target of 0 turns the
/// rule off.
///
/// Pure: events in, decisions out, time passed in.
public struct AdmissionController: Sendable {
    public enum Discipline: String, Sendable {
        case fifo, lifo
    }

    public struct Settings: Sendable, Equatable {
        public var targetUtilization: Double
        public var queueTimeout: Duration
        public var discipline: Discipline
        /// The `shedAt` fractions by ``Priority/rank``, read on every arrival: a
        /// dictionary lookup there (hashing the key) was ~1 % of the gateway's user time
        /// in the profile.
        private(set) var thresholds: SIMD4<Double>
        /// Standing-queue rule: the wait a standing queue is held to; zero turns the rule off.
        public var queueDelayTarget: Duration
        /// …once waits have stayed at or above the target for this long.
        public var queueDelayInterval: Duration

        public init(
            targetUtilization: Double = 0.67, queueTimeout: Duration = .seconds(1), discipline: Discipline = .fifo,
            shedAt: [Priority: Double] = [.low: 0.8, .normal: 0.95, .critical: 1.0],
            queueDelayTarget: Duration = .milliseconds(5), queueDelayInterval: Duration = .milliseconds(100)
        ) {
            self.targetUtilization = targetUtilization
            self.queueTimeout = queueTimeout
            self.discipline = discipline
            self.thresholds = Self.byRank(shedAt)
            self.queueDelayTarget = queueDelayTarget
            self.queueDelayInterval = queueDelayInterval
        }

        private static func byRank(_ shedAt: [Priority: Double]) -> SIMD4<Double> {
            var result = SIMD4<Double>(repeating: 1)
            for priority in Priority.allCases { result[priority.rank] = shedAt[priority] ?? 1 }
            return result
        }
    }

    public enum Decision: Sendable, Equatable {
        case admit
        /// Wait; the caller arms a timer for `deadline` and calls ``expire(now:)``.
        case enqueue(deadline: MonotonicTime)
        case reject(ShedReason)
    }

    struct Waiter: Sendable {
        var id: Int
        var since: MonotonicTime
        var deadline: MonotonicTime
    }

    public private(set) var settings: Settings
    public private(set) var capacity: Int
    /// Requests that may run at once: `S`, or this replica's share of it in cluster mode.
    public private(set) var slots: Int
    /// `slots`, or in cluster mode the share this replica is due (``LeasePlanner/Share/due``),
    /// which its grant is short of while other replicas' running requests hold slots:
    /// the queue is sized and waits are predicted by it.
    public private(set) var dueSlots: Int
    public private(set) var queueLimit: Int
    /// `S = floor(C × u)` for the whole gateway (the cluster's, in cluster mode).
    public private(set) var fullSlots: Int
    /// Cluster mode: this replica's share of `S` (``LeasePlanner``); nil on a single gateway.
    public private(set) var share: LeasePlanner.Share?
    public private(set) var inFlight = 0
    /// Requests admitted so far, a running total (the retry budget's measure of traffic).
    public private(set) var admittedTotal = 0
    private var queues: [Deque<Waiter>] = [[], [], []]
    /// Mean service time of completed requests (EWMA, α = 1/16), nil until one completes.
    public private(set) var meanServiceNanos: Double?
    /// The queue is standing (see the type's comment): waits are held to `queueDelayTarget`.
    /// As of the last event; ``isStanding(at:)`` also ends it when time alone has.
    public private(set) var standing = false
    /// Since when every wait observed has been at or above the target (CoDel's "first above").
    private var aboveTargetSince: MonotonicTime?
    /// While standing: when the rule last refused or timed out a request it held short.
    private var lastHeld = MonotonicTime.zero
    /// A waiter was queued with an earlier deadline than one ahead of it (the queue began
    /// standing while it held waiters): expiry then looks at every waiter, not only the front.
    private var deadlinesOutOfOrder = false

    public init(capacity: Int, settings: Settings) {
        self.settings = settings
        self.capacity = 0
        self.slots = 0
        self.dueSlots = 0
        self.queueLimit = 0
        self.fullSlots = 0
        _ = setCapacity(capacity)
    }

    public var queued: Int { queues[0].count + queues[1].count + queues[2].count }

    /// The capacity the rule works against: `C`, or in cluster mode this replica's
    /// part of it (its share of `S` plus the same part of the queue).
    public var effectiveCapacity: Int { share == nil ? capacity : slots + queueLimit }

    /// `(running + queued) / C`; 1 or more means full (and at capacity 0).
    public var utilization: Double {
        effectiveCapacity > 0 ? Double(inFlight + queued) / Double(effectiveCapacity) : 1
    }

    /// Time between slot releases when every slot is busy: mean service / S (in cluster
    /// mode / the share due: the slots still held elsewhere come free as those requests end).
    public var perSlotServiceNanos: Double? {
        guard let meanServiceNanos, dueSlots > 0 else { return nil }
        return meanServiceNanos / Double(dueSlots)
    }

    /// One arrival through the rule. `recordWaiter` false decides without queueing
    /// anyone (``AdmissionChecks/preview(clientKey:priority:now:jitter:)`` runs the rule
    /// on a copy, where appending would copy the whole queue: up to ~0.1 MB per preview
    /// at a long queue).
    public mutating func arrive(id: Int, priority: Priority, now: MonotonicTime, recordWaiter: Bool = true) -> Decision {
        guard capacity > 0 else { return .reject(.noHealthyUpstream) }
        let threshold = settings.thresholds[priority.rank]
        if threshold < 1 && Double(inFlight + queued) >= (Double(effectiveCapacity) * threshold).rounded(.up) {
            return .reject(.overloaded)
        }
        if standing && !isStanding(at: now) { standing = false }
        if inFlight < slots && queued == 0 {
            occupySlot()
            observeWait(.zero, now: now)
            return .admit
        }
        if queued >= queueLimit {
            if standing { lastHeld = now }
            return .reject(.overloaded)
        }
        let longestWait = standing ? min(settings.queueDelayTarget, settings.queueTimeout) : settings.queueTimeout
        let position = Double(queued + 1)
        if let perSlot = perSlotServiceNanos, position * perSlot > Double(longestWait.nanosecondsClamped) {
            if standing { lastHeld = now }
            return .reject(.overloaded)
        }
        let deadline = now + longestWait
        guard recordWaiter else { return .enqueue(deadline: deadline) }
        if let last = queues[priority.rank].last, last.deadline > deadline { deadlinesOutOfOrder = true }
        queues[priority.rank].append(Waiter(id: id, since: now, deadline: deadline))
        return .enqueue(deadline: deadline)
    }

    /// Admits regardless of the rule — for dry run, which counts what it would shed
    /// and sheds nothing (running may then exceed `slots`).
    public mutating func forceAdmit() {
        occupySlot()
    }

    /// One more request running, and counted as admitted.
    private mutating func occupySlot() {
        inFlight += 1
        admittedTotal &+= 1
    }

    /// An admitted request finished (`serviceTime` nil when it never reached an
    /// upstream). Returns the waiters admitted into the freed slot(s), in order. `now`
    /// times their waits for the standing-queue rule (nil: not observed).
    public mutating func release(serviceTime: Duration?, now: MonotonicTime? = nil) -> [Int] {
        precondition(inFlight > 0, "release without admit")
        inFlight -= 1
        if let serviceTime {
            let sample = Double(serviceTime.nanosecondsClamped)
            meanServiceNanos = meanServiceNanos.map { $0 + (sample - $0) / 16 } ?? sample
        }
        return admitWaiters(now: now)
    }

    /// Waiters whose deadline passed: removed and returned (to answer `queue_timeout`).
    public mutating func expire(now: MonotonicTime) -> [Int] {
        var expired: [Int] = []
        for rank in 0..<3 {
            // Deadlines grow with arrival; in both disciplines the oldest sit at the front.
            while let first = queues[rank].first, first.deadline <= now {
                expired.append(queues[rank].removeFirst().id)
                observeWait(now - first.since, now: now)
            }
            if deadlinesOutOfOrder {
                for waiter in queues[rank] where waiter.deadline <= now {
                    expired.append(waiter.id)
                    observeWait(now - waiter.since, now: now)
                }
                queues[rank].removeAll { $0.deadline <= now }
            }
        }
        if queued == 0 { deadlinesOutOfOrder = false }
        if standing && !expired.isEmpty { lastHeld = now }
        return expired
    }

    /// Whether the queue is standing at `now`: it was, and the rule refused or timed out
    /// a request within the last interval.
    public func isStanding(at now: MonotonicTime) -> Bool {
        standing && now - lastHeld < settings.queueDelayInterval
    }

    /// A waiter left (its client went away). True if it was still waiting.
    public mutating func cancel(id: Int) -> Bool {
        for rank in 0..<3 {
            if let index = queues[rank].firstIndex(where: { $0.id == id }) {
                queues[rank].remove(at: index)
                return true
            }
        }
        return false
    }

    /// A reload changed the settings: slots and queue bound follow at once (as for a
    /// capacity change); requests in flight and waiting keep their places and deadlines.
    public mutating func update(settings: Settings) -> (admitted: [Int], rejected: [Int]) {
        self.settings = settings
        if settings.queueDelayTarget <= .zero {
            standing = false
            aboveTargetSince = nil
        }
        return setCapacity(capacity)
    }

    /// The ready capacity changed (an upstream went down or came back). Returns
    /// waiters admitted into new slots and waiters that no longer fit the queue.
    public mutating func setCapacity(_ newCapacity: Int) -> (admitted: [Int], rejected: [Int]) {
        capacity = max(0, newCapacity)
        updateLimits()
        let admitted = admitWaiters()
        var rejected: [Int] = []
        while queued > queueLimit {
            // Shed the lowest class first, newest first within it.
            for rank in stride(from: 2, through: 0, by: -1) where !queues[rank].isEmpty {
                rejected.append(queues[rank].removeLast().id)
                break
            }
        }
        return (admitted, rejected)
    }

    /// Cluster mode: the share of `S` this replica may run (nil: all of it). Returns the
    /// waiters admitted into it; `rejected` is always empty: a smaller share does not
    /// shed waiters beyond the smaller queue, which keep their places until a slot or
    /// their deadline (later arrivals see the smaller queue). Shares move with every
    /// renewal and in steps — when an upgrade's predecessor leaves, the slots it held
    /// stop sizing the queue a round trip before the share they free arrives (the likely
    /// cause of 3 of 20 waiters shed in one upgrade run, from its ledger and access-log
    /// times) — while a lower capacity is a lasting change.
    public mutating func setShare(_ share: LeasePlanner.Share?) -> (admitted: [Int], rejected: [Int]) {
        self.share = share
        updateLimits()
        return (admitWaiters(), [])
    }

    /// Slots and the queue bound from `capacity`, the settings and the share.
    private mutating func updateLimits() {
        fullSlots = Int((Double(capacity) * settings.targetUtilization).rounded(.down))
        if capacity > 0 && fullSlots == 0 { fullSlots = 1 }
        if let share {
            // The queue is this replica's part of C − S, in proportion to the share it is
            // due (it is local, but its waits are not). By the grant instead, a replica
            // whose share other replicas' running requests still held had no queue and
            // shed everything until they ended: the new process of an in-place upgrade
            // answered 1 708-9 320 × 503 in 6 s (docs/results/cluster-upgrade-2026-12-04/).
            // An in-place upgrade's new process may also queue for the slots its
            // predecessor still holds (``LeasePlanner/Share/inTransit``).
            slots = share.slots(for: fullSlots)
            dueSlots = share.due(for: fullSlots)
            queueLimit = fullSlots > 0 ? ((capacity - fullSlots) * dueSlots + fullSlots - 1) / fullSlots : 0
            queueLimit += share.inTransit(for: fullSlots)
        } else {
            slots = fullSlots
            dueSlots = fullSlots
            queueLimit = capacity - fullSlots
        }
    }

    /// Estimated time for the current queue (plus one) to drain, for `Retry-After`.
    public var drainEstimate: Duration {
        guard let perSlot = perSlotServiceNanos else { return settings.queueTimeout }
        return .nanoseconds(Int64(perSlot * Double(queued + 1)))
    }

    private mutating func admitWaiters(now: MonotonicTime? = nil) -> [Int] {
        var admitted: [Int] = []
        while inFlight < slots, let waiter = popNext() {
            occupySlot()
            admitted.append(waiter.id)
            if let now { observeWait(now - waiter.since, now: now) }
        }
        if queued == 0 { deadlinesOutOfOrder = false }
        return admitted
    }

    /// CoDel's test, on each wait that ends: below the target resets the clock; at or
    /// above it for a whole interval makes the queue standing.
    private mutating func observeWait(_ wait: Duration, now: MonotonicTime) {
        guard settings.queueDelayTarget > .zero, wait >= settings.queueDelayTarget else {
            aboveTargetSince = nil
            return
        }
        guard let since = aboveTargetSince else {
            aboveTargetSince = now
            return
        }
        if !standing && now - since >= settings.queueDelayInterval {
            standing = true
            lastHeld = now
        }
    }

    private mutating func popNext() -> Waiter? {
        for rank in 0..<3 where !queues[rank].isEmpty {
            return settings.discipline == .fifo ? queues[rank].removeFirst() : queues[rank].removeLast()
        }
        return nil
    }
}
