/// When the cluster agent renews its lease besides every `sync_interval`: early, for a
/// burst that finds this replica short of `S` while slots may be free elsewhere.
///
/// The gate asks once (``AdmissionChecks/Outcome/renewShare``: the first request that
/// waits or is refused for capacity) until it is let ask again. An early renewal
/// reports the demand of that moment, which for a burst still arriving is only its
/// first part; so while early renewals make the share grow, the next follows at once if
/// requests still wait, or the gate may ask again for the rest of the burst. Early
/// renewals that bring nothing are bounded: at most ``earlyPerInterval`` between two
/// scheduled ones (one that grows the share is not counted: the share grows only into
/// slots others freed). A renewal that does not grow the share (the slots are held by
/// the other replicas) ends the chain: under a lasting overload a replica adds about
/// one call to Redis per interval. One renewal is in
/// flight at a time; an ask meanwhile is sent when it is answered.
///
/// Unless the replica is short of the share it is due (``LeasePlanner/Share/due``)
/// while requests wait: then the slots are held by requests running elsewhere — an
/// upgraded process's predecessor draining, a replica whose demand fell — which end
/// within their service time. When no renewal follows at once (one that brought nothing,
/// or the budget is spent), the next is tried after a delay (``Next/retry(after:)``)
/// that starts at ``retryFloor`` and doubles up to the interval while renewals bring
/// nothing; one that brings slots resets it. Freed slots
/// so arrive within milliseconds, and a shortfall that lasts costs about one call per
/// interval. (Until 2026-12-04 the replica waited for its next interval, up to
/// `sync_interval`.)
///
/// Handing over (``handOver()``: an in-place upgrade's old process draining), the gate
/// asks each time a request ends and frees its slot, and every ask is sent — no
/// budget, still one at a time — so the new process, which waits for exactly those
/// slots, can take each within a round trip to Redis; the calls end with the drain.
/// Pure: the agent reports what happened and does what it is told.
public struct RenewalPacing: Sendable, Equatable {
    /// Early renewals that bring nothing allowed between two scheduled ones.
    public let earlyPerInterval: Int
    /// Renewals sent and not answered.
    public private(set) var inFlight = 0
    /// Early renewals since the last scheduled one, less those that grew the share.
    public private(set) var early = 0
    private var pending = false
    /// An in-place upgrade's new process serves and this one drains.
    public private(set) var handingOver = false
    /// The first delay before a renewal is tried again while short of the share due.
    public let retryFloor: Duration
    /// The longest such delay: the interval between scheduled renewals.
    public let retryCeiling: Duration
    /// The delay the next retry waits (nil: ``retryFloor``).
    private var retryDelay: Duration?
    /// A retry is scheduled and has not fired.
    public private(set) var retryArmed = false

    public init(earlyPerInterval: Int = 3, interval: Duration = .milliseconds(250)) {
        self.earlyPerInterval = earlyPerInterval
        self.retryCeiling = interval
        self.retryFloor = max(.milliseconds(1), interval / 50)
    }

    /// From now on every ask is sent (one at a time) and every answer listens again.
    public mutating func handOver() { handingOver = true }

    /// A scheduled renewal is sent: it carries the demand of now (a pending ask is
    /// answered by it) and the early budget is whole again.
    public mutating func scheduledSent() {
        inFlight += 1
        early = 0
        pending = false
    }

    /// The gate asked for an early renewal. True: send one now.
    public mutating func asked() -> Bool {
        guard handingOver || early < earlyPerInterval else { return false }
        guard inFlight == 0 else {
            pending = true
            return false
        }
        sendEarly()
        return true
    }

    public enum Next: Sendable, Equatable {
        case nothing
        /// Send an early renewal now.
        case send
        /// Let the gate ask again (the burst may still be arriving).
        case listen
        /// Call ``retryFired()`` after this long.
        case retry(after: Duration)
    }

    /// A renewal was answered, or failed. `early`: it was an early one; `grew`: the
    /// share it brought is larger than before; `stillShort`: requests still wait while
    /// this replica holds less than `S`; `shortOfDue`: it holds less than the share it
    /// is due.
    public mutating func answered(early wasEarly: Bool, grew: Bool, stillShort: Bool, shortOfDue: Bool = false) -> Next {
        inFlight = max(0, inFlight - 1)
        if grew || !shortOfDue { retryDelay = nil }
        guard inFlight == 0 else { return .nothing }
        if handingOver {
            guard pending else { return .listen }
            sendEarly()
            return .send
        }
        // One that made the share grow is not counted against the budget: the share
        // grows only into slots others freed, at most up to S. (Counted, a burst that
        // needed a fourth step would wait for a retry, or the interval, with slots free.)
        // A retry that grows the share gives one back too: the bound on renewals that
        // bring nothing is then three plus the retries that brought slots.
        if wasEarly && grew && early > 0 { early -= 1 }
        let next: Next
        if early >= earlyPerInterval {
            pending = false
            next = .nothing
        } else if pending || (wasEarly && grew && stillShort) {
            sendEarly()
            return .send
        } else {
            next = wasEarly && grew ? .listen : .nothing
        }
        // Nothing sent now, requests wait and slots are due: try again after the delay
        // (the floor again after a renewal that brought slots, the budget spent or not).
        guard stillShort, shortOfDue, !retryArmed else { return next }
        let delay = retryDelay ?? retryFloor
        retryDelay = min(delay * 2, retryCeiling)
        retryArmed = true
        return .retry(after: delay)
    }

    /// The delay of a ``Next/retry(after:)`` passed. True: send a renewal now (none is
    /// in flight; one that is brings the news and its answer decides the next step).
    public mutating func retryFired() -> Bool {
        retryArmed = false
        guard inFlight == 0 else { return false }
        inFlight += 1
        return true
    }

    private mutating func sendEarly() {
        pending = false
        early += 1
        inFlight += 1
    }
}
