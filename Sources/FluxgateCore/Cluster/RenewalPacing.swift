/// When the cluster agent renews its lease besides every `sync_interval`: early, for a
/// burst that finds this replica short of `S` while slots may be free elsewhere.
///
/// The gate asks once (``AdmissionChecks/Outcome/renewShare``: the first request that
/// waits or is refused for capacity) until it is let ask again. An early renewal
/// reports the demand of that moment, which for a burst still arriving is only its
/// first part; so while early renewals make the share grow, the next follows at once if
/// requests still wait, or the gate may ask again for the rest of the burst — at most
/// ``earlyPerInterval`` early renewals between two scheduled ones. A renewal that does
/// not grow the share (the slots are held by the other replicas) ends it: under a
/// lasting overload a replica adds one call to Redis per interval. One renewal is in
/// flight at a time; an ask meanwhile is sent when it is answered.
///
/// Handing over (``handOver()``: an in-place upgrade's old process draining), the gate
/// asks each time a request ends and frees its slot, and every ask is sent — no
/// budget, still one at a time — so the new process, which waits for exactly those
/// slots, can take each within a round trip to Redis; the calls end with the drain.
/// Pure: the agent reports what happened and does what it is told.
public struct RenewalPacing: Sendable, Equatable {
    /// Early renewals allowed between two scheduled ones.
    public let earlyPerInterval: Int
    /// Renewals sent and not answered.
    public private(set) var inFlight = 0
    /// Early renewals since the last scheduled one.
    public private(set) var early = 0
    private var pending = false
    /// An in-place upgrade's new process serves and this one drains.
    public private(set) var handingOver = false

    public init(earlyPerInterval: Int = 3) {
        self.earlyPerInterval = earlyPerInterval
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
    }

    /// A renewal was answered, or failed. `early`: it was an early one; `grew`: the
    /// share it brought is larger than before; `stillShort`: requests still wait while
    /// this replica holds less than `S`.
    public mutating func answered(early wasEarly: Bool, grew: Bool, stillShort: Bool) -> Next {
        inFlight = max(0, inFlight - 1)
        guard inFlight == 0 else { return .nothing }
        if handingOver {
            guard pending else { return .listen }
            sendEarly()
            return .send
        }
        guard early < earlyPerInterval else {
            pending = false
            return .nothing
        }
        if pending || (wasEarly && grew && stillShort) {
            sendEarly()
            return .send
        }
        return wasEarly && grew ? .listen : .nothing
    }

    private mutating func sendEarly() {
        pending = false
        early += 1
        inFlight += 1
    }
}
