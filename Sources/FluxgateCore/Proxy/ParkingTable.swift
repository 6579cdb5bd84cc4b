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
    public typealias ID = SlotID

    private struct Expiry: Comparable {
        var deadline: MonotonicTime
        var id: SlotID

        static func < (lhs: Expiry, rhs: Expiry) -> Bool { lhs.deadline < rhs.deadline }
        static func == (lhs: Expiry, rhs: Expiry) -> Bool { lhs.deadline == rhs.deadline }
    }

    private var entries = SlotTable<Payload>()
    private var expiries = Heap<Expiry>()
    /// Expiries whose entry left before its deadline, since the last rebuild.
    private var abandoned = 0
    /// Slots beyond this are refused (an id must fit the caller's bits).
    public let maxSlots: Int

    public init(maxSlots: Int = 1 << 24) {
        self.maxSlots = maxSlots
    }

    /// Entries parked now.
    public var count: Int { entries.count }

    /// Expiries held, stale ones included (for tests).
    public var pendingExpiries: Int { expiries.count }

    /// The earliest expiry (possibly of an entry that left: it then expires into nothing).
    public var nextDeadline: MonotonicTime? { expiries.min?.deadline }

    /// Parks `payload` until `deadline`; nil when the table is full.
    public mutating func insert(_ payload: Payload, until deadline: MonotonicTime) -> ID? {
        guard entries.count < maxSlots else { return nil }
        let id = entries.insert(payload)
        expiries.insert(Expiry(deadline: deadline, id: id))
        return id
    }

    /// Takes the entry out (its client woke it); nil when `id` no longer names one.
    public mutating func remove(_ id: ID) -> Payload? {
        guard let payload = entries.remove(id) else { return nil }
        abandoned += 1
        if abandoned > 1_024, abandoned * 2 > expiries.count {
            expiries = Heap(expiries.unordered.filter { entries.contains($0.id) })
            abandoned = 0
        }
        return payload
    }

    /// Takes out every entry whose deadline is at or before `now`.
    public mutating func removeExpired(now: MonotonicTime) -> [Payload] {
        var due: [Payload] = []
        while let first = expiries.min, first.deadline <= now {
            let expiry = expiries.removeMin()
            if let payload = entries.remove(expiry.id) {
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
            if let payload = entries.remove(expiry.id) { return payload }
            if abandoned > 0 { abandoned -= 1 }
        }
        return nil
    }

    /// Takes out every entry (a drain, a stop); an id handed out before matches nothing after.
    public mutating func removeAll() -> [Payload] {
        let all = entries.removeAll()
        expiries = Heap()
        abandoned = 0
        return all
    }
}

extension ParkingTable: Sendable where Payload: Sendable {}
