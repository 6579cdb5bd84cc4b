/// What to do with a limit when the shared store (Redis) cannot be reached
/// (`on_store_failure`).
public enum StoreFailurePolicy: String, Sendable, Equatable, CaseIterable {
    /// Admit a static share: the limit divided by the last known replica count.
    case staticShare = "static_share"
    /// Admit nothing until the store is back (503).
    case closed
}

/// One replica's side of the shared-capacity lease (cluster mode).
///
/// Each `sync_interval` the replica reports its demand and asks for a share of the
/// slots `S`; the store (a Lua script, atomically) grants at most `S` minus what the
/// other live replicas hold, so the grants never add up to more than `S`. This type
/// decides what to ask for (``FairShare`` over the peers' last reported demands and its
/// own) and which share the local ``AdmissionController`` runs with, including when
/// the store is down: the last grant stays valid until its lease runs out
/// (`lease_ttl`, the store counts it for as long), then the replica falls back to
/// `S / last known replica count` or, with `on_store_failure: closed`, to nothing.
/// Pure: time and the store's answers are passed in.
public struct LeasePlanner: Sendable {
    public struct Settings: Sendable, Equatable {
        public var leaseTTL: Duration
        /// Each replica's floor as a share of an even split `S / n`, in [0, 1].
        public var shareFloor: Double
        public var onStoreFailure: StoreFailurePolicy
        /// Replicas assumed before the store has ever answered.
        public var fallbackReplicas: Int

        public init(leaseTTL: Duration = .seconds(2), shareFloor: Double = 0.25, onStoreFailure: StoreFailurePolicy = .staticShare, fallbackReplicas: Int = 1) {
            self.leaseTTL = leaseTTL
            self.shareFloor = shareFloor
            self.onStoreFailure = onStoreFailure
            self.fallbackReplicas = fallbackReplicas
        }
    }

    /// How the replica's share was decided.
    public enum Mode: String, Sendable, Equatable {
        /// Granted by the store (or the last grant, still within its lease).
        case leased
        /// Store unreachable past the lease: `S / replicas`.
        case staticShare = "static_share"
        /// Store unreachable past the lease, `on_store_failure: closed`: no slots.
        case closed
    }

    /// The slots the local controller may run, as a grant made when `S` was `base`:
    /// if the local `S` shrinks later (an upstream went down), the share shrinks with it.
    public struct Share: Sendable, Equatable {
        public var slots: Int
        public var base: Int
        /// This replica's fair share by the demands last reported (``FairShare``), at
        /// least `slots`. A grant falls short of it while other
        /// replicas' running requests still hold the slots (a replica that just joined a
        /// busy cluster, the new process of an in-place upgrade); the local queue is
        /// sized by it (``AdmissionController``), so requests wait for those slots
        /// instead of being shed. A fallback share is due what it is.
        public var due: Int
        /// The slots the process this one replaced in an in-place upgrade still holds:
        /// its running requests', which end within their service time while their
        /// clients come here. The local queue holds as many more waiters, so that those
        /// clients wait for the slots as they pass over (a renewal or two later) instead
        /// of being shed; 0 without a predecessor and once it has gone.
        public var inTransit: Int

        public init(slots: Int, base: Int, due: Int? = nil, inTransit: Int = 0) {
            self.slots = slots
            self.base = base
            self.due = Swift.max(slots, due ?? slots)
            self.inTransit = Swift.max(0, inTransit)
        }

        /// The share against the local `S` now: never more than granted, scaled down with `S`.
        public func slots(for localSlots: Int) -> Int { Self.scaled(slots, base: base, to: localSlots) }

        /// ``due`` against the local `S` now, as ``slots(for:)``.
        public func due(for localSlots: Int) -> Int { Self.scaled(due, base: base, to: localSlots) }

        /// ``inTransit`` against the local `S` now, as ``slots(for:)``.
        public func inTransit(for localSlots: Int) -> Int { Self.scaled(inTransit, base: base, to: localSlots) }

        private static func scaled(_ slots: Int, base: Int, to localSlots: Int) -> Int {
            guard base > 0, localSlots < base else { return Swift.min(slots, localSlots) }
            return slots * localSlots / base
        }
    }

    public let settings: Settings
    public private(set) var mode: Mode = .leased
    /// Live replicas (this one included) at the last answer from the store.
    public private(set) var replicas: Int
    public private(set) var share: Share?
    /// The other replicas' demands at the last answer.
    public private(set) var peerDemands: [Int] = []
    /// This replica's demand, smoothed: it rises at once and decays by half per report.
    public private(set) var demand = 0.0
    /// The demand of the process this one replaced in an in-place upgrade, as its lease
    /// last said (0 without one): its clients come here, so this replica asks and is
    /// due as if it were its own — but does not report it, or the store would count it
    /// twice and shrink the predecessor's share while it still serves them.
    public private(set) var predecessorDemand = 0
    private var leaseExpiry: MonotonicTime?
    /// After a fallback, asks for no more than the static share until then (see ``granted``).
    private var holdStatic: (until: MonotonicTime, slots: Int)?
    /// This process handed its place to an in-place upgrade's new process and drains
    /// (``handOver()``).
    public private(set) var handingOver = false

    public init(settings: Settings) {
        self.settings = settings
        self.replicas = Swift.max(1, settings.fallbackReplicas)
    }

    public var degraded: Bool { mode != .leased }

    /// An in-place upgrade's new process serves now and this one drains: from here on it
    /// asks for what it still runs and queues — no floor, no headroom, no smoothed
    /// demand — and reports a demand of 0 (the new process has taken it over:
    /// ``predecessorDemand``), so each slot its requests free passes
    /// to the new process, which is due it, instead of being held for a demand that will
    /// not come back.
    public mutating func handOver() { handingOver = true }

    /// The report for this round: the smoothed demand and the share to ask for.
    /// `demand` is running + queued + refused for capacity since the last report.
    public mutating func report(demand instant: Int, slots: Int, now: MonotonicTime) -> (demand: Int, want: Int) {
        if handingOver {
            demand = 0
            return (0, Swift.min(Swift.max(0, instant), slots))
        }
        let sample = Double(Swift.max(0, instant))
        demand = sample >= demand ? sample : demand + (sample - demand) / 2
        return (Int(demand.rounded(.up)), fairShare(slots: slots, now: now))
    }

    /// This replica's part of `slots` by the demands as last seen, its own included.
    private mutating func fairShare(slots: Int, now: MonotonicTime) -> Int {
        let all = [Swift.max(Int(demand.rounded(.up)), predecessorDemand)] + peerDemands
        let floor = Int((Double(slots) / Double(all.count) * settings.shareFloor).rounded(.up))
        var want = FairShare.split(capacity: slots, demands: all, floor: floor)[0]
        if mode != .leased {
            // Still on the fallback: the first lease back is no larger either.
            want = Swift.min(want, staticShare(slots))
        } else if let holdStatic, now < holdStatic.until {
            want = Swift.min(want, holdStatic.slots)
        } else {
            holdStatic = nil
        }
        return want
    }

    /// The store granted `grant` slots out of `slots`; `peers` are the other live
    /// replicas' demands. The share is due this replica's fair part by that view (the
    /// grant falls short of it while others' running requests hold the slots).
    /// `predecessor`: the lease of the process this one replaced in an in-place upgrade,
    /// while it lasts — the clients it served come here now, so this replica asks as if
    /// their demand were its own (``predecessorDemand``: it is due their share from its
    /// first lease rather than a floor) and may queue as many of them as the predecessor
    /// still holds slots (``Share/inTransit``).
    ///
    /// Coming back from a fallback, the replica asks for no more than its static share
    /// for one lease TTL: the others may still be running theirs without the store
    /// knowing (a restarted Redis has an empty ledger), and a lease taken from the
    /// empty ledger on top of them would admit more than `S` between them.
    /// `demandNow`: running + queued as the answer arrives — a burst that came after the
    /// report is due its share now (the smoothed demand rises to it at once).
    public mutating func granted(
        _ grant: Int, slots: Int, peers: [Int], predecessor: (demand: Int, held: Int)? = nil, demandNow: Int = 0,
        now: MonotonicTime
    ) -> Share {
        if mode != .leased { holdStatic = (now + settings.leaseTTL, staticShare(slots)) }
        mode = .leased
        peerDemands = peers
        replicas = peers.count + 1
        leaseExpiry = now + settings.leaseTTL
        let due: Int
        if handingOver {
            predecessorDemand = 0
            due = grant
        } else {
            predecessorDemand = predecessor?.demand ?? 0
            demand = Swift.max(demand, Double(demandNow))
            due = fairShare(slots: slots, now: now)
        }
        let share = Share(slots: Swift.max(0, grant), base: slots, due: due, inTransit: predecessor?.held ?? 0)
        self.share = share
        return share
    }

    /// The store did not answer this round. Returns the share to run with now.
    public mutating func storeFailed(slots: Int, now: MonotonicTime) -> Share {
        if let share, let leaseExpiry, now < leaseExpiry { return share }
        leaseExpiry = nil
        switch settings.onStoreFailure {
        case .staticShare:
            mode = .staticShare
            share = Share(slots: staticShare(slots), base: slots)
        case .closed:
            mode = .closed
            share = Share(slots: 0, base: slots)
        }
        return share!
    }

    /// `S / replicas`, at least 1 while `S` is.
    public func staticShare(_ slots: Int) -> Int {
        slots > 0 ? Swift.max(1, slots / replicas) : 0
    }
}
