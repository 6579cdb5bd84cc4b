import HeapModule

/// The connections one event loop has parked (the gateway's `ParkingLot`): each with
/// its idle deadline, found again by an id that names its slot and the slot's
/// generation, so an id of a connection that already left matches nothing.
///
/// Kept in flat arrays — a slot table and a heap of 16-byte expiries — so a parked
/// connection allocates nothing of its own. That matters beyond its size: the memory
/// of a parked connection's channel is freed on the loop and given back to the system
/// by whole pages (`malloc_trim`); an object per parked connection, allocated into the
/// holes those channels left, held most of those pages (2.46 KiB per idle connection
/// stayed resident with one, docs/PERFORMANCE.md#memory-per-idle-connection).
///
/// Expiries are not removed when a connection leaves early (woken by its client): they
/// expire into nothing, and once they are more than half the heap (and over 1 024) it
/// is rebuilt without them, as ``LoopTimers`` does in the gateway. Pure: time comes in.
public struct ParkingTable<Payload> {
    /// A parked entry's slot and its generation.
    public struct ID: Hashable, Sendable {
        public let slot: UInt32
        public let generation: UInt32

        public init(slot: UInt32, generation: UInt32) {
            self.slot = slot
            self.generation = generation
        }

        /// Both in one word; ``init(packed:)`` reads it back.
        public var packed: UInt64 { UInt64(slot) << 32 | UInt64(generation) }

        public init(packed: UInt64) {
            self.init(slot: UInt32(truncatingIfNeeded: packed >> 32), generation: UInt32(truncatingIfNeeded: packed))
        }
    }

    private struct Expiry: Comparable {
        var deadline: MonotonicTime
        var slot: UInt32
        var generation: UInt32

        static func < (lhs: Expiry, rhs: Expiry) -> Bool { lhs.deadline < rhs.deadline }
        static func == (lhs: Expiry, rhs: Expiry) -> Bool { lhs.deadline == rhs.deadline }
    }

    private var payloads: [Payload?] = []
    /// Bumped when a slot is freed: ids and expiries of its earlier entries no longer match.
    private var generations: [UInt32] = []
    private var freeSlots: [UInt32] = []
    private var expiries = Heap<Expiry>()
    /// Expiries whose entry left before its deadline, since the last rebuild.
    private var abandoned = 0
    /// Slots beyond this are refused (an id must fit the caller's bits).
    public let maxSlots: Int
    /// Entries parked now.
    public private(set) var count = 0

    public init(maxSlots: Int = 1 << 24) {
        self.maxSlots = maxSlots
    }

    /// Expiries held, stale ones included (for tests).
    public var pendingExpiries: Int { expiries.count }

    /// The earliest expiry (possibly of an entry that left: it then expires into nothing).
    public var nextDeadline: MonotonicTime? { expiries.min?.deadline }

    /// Parks `payload` until `deadline`; nil when the table is full.
    public mutating func insert(_ payload: Payload, until deadline: MonotonicTime) -> ID? {
        let slot: UInt32
        if let free = freeSlots.popLast() {
            slot = free
            payloads[Int(slot)] = payload
        } else {
            guard payloads.count < maxSlots else { return nil }
            slot = UInt32(payloads.count)
            payloads.append(payload)
            generations.append(0)
        }
        count += 1
        let id = ID(slot: slot, generation: generations[Int(slot)])
        expiries.insert(Expiry(deadline: deadline, slot: slot, generation: id.generation))
        return id
    }

    /// Takes the entry out (its client woke it); nil when `id` no longer names one.
    public mutating func remove(_ id: ID) -> Payload? {
        guard let payload = free(slot: Int(id.slot), generation: id.generation) else { return nil }
        abandoned += 1
        if abandoned > 1_024, abandoned * 2 > expiries.count {
            expiries = Heap(expiries.unordered.filter { isCurrent($0) })
            abandoned = 0
        }
        return payload
    }

    /// Takes out every entry whose deadline is at or before `now`.
    public mutating func removeExpired(now: MonotonicTime) -> [Payload] {
        var due: [Payload] = []
        while let first = expiries.min, first.deadline <= now {
            let expiry = expiries.removeMin()
            if let payload = free(slot: Int(expiry.slot), generation: expiry.generation) {
                due.append(payload)
            } else if abandoned > 0 {
                abandoned -= 1
            }
        }
        return due
    }

    /// Takes out the entry whose deadline comes first — the one idle longest, since every
    /// entry's deadline is its idle timeout from when it went quiet — to make room for a
    /// new connection at the cap; nil when none is parked.
    public mutating func removeOldest() -> Payload? {
        while let expiry = expiries.popMin() {
            if let payload = free(slot: Int(expiry.slot), generation: expiry.generation) { return payload }
            if abandoned > 0 { abandoned -= 1 }
        }
        return nil
    }

    /// Takes out every entry (a drain, a stop).
    public mutating func removeAll() -> [Payload] {
        var all: [Payload] = []
        all.reserveCapacity(count)
        for slot in payloads.indices {
            if let payload = free(slot: slot, generation: generations[slot]) { all.append(payload) }
        }
        // Generations stay bumped: an id handed out before matches nothing after.
        expiries = Heap()
        abandoned = 0
        return all
    }

    private func isCurrent(_ expiry: Expiry) -> Bool {
        generations[Int(expiry.slot)] == expiry.generation && payloads[Int(expiry.slot)] != nil
    }

    private mutating func free(slot: Int, generation: UInt32) -> Payload? {
        guard slot < payloads.count, generations[slot] == generation, let payload = payloads[slot] else { return nil }
        payloads[slot] = nil
        generations[slot] &+= 1
        freeSlots.append(UInt32(slot))
        count -= 1
        return payload
    }
}

extension ParkingTable: Sendable where Payload: Sendable {}
