/// An entry's place in a ``SlotTable``: its slot and the slot's generation when the
/// entry was put there. Eight bytes, so a timer or queue record that names an entry
/// stays small.
public struct SlotID: Hashable, Sendable {
    public let slot: UInt32
    public let generation: UInt32

    @inlinable
    public init(slot: UInt32, generation: UInt32) {
        self.slot = slot
        self.generation = generation
    }

    /// Both in one word; ``init(packed:)`` reads it back.
    @inlinable
    public var packed: UInt64 { UInt64(slot) << 32 | UInt64(generation) }

    @inlinable
    public init(packed: UInt64) {
        self.init(slot: UInt32(truncatingIfNeeded: packed >> 32), generation: UInt32(truncatingIfNeeded: packed))
    }
}

/// Values found again by a ``SlotID``: taking a value out bumps its slot's generation,
/// so every id handed out for it before — held by a timer entry, a queue record, a
/// connection that has left — matches nothing after, and the slot is reused for the
/// next value. (A stale id would have to outlive 2³² reuses of its slot to be mistaken.)
///
/// What the event loops' tables share: the connection timers (`LoopTimers`), the parked
/// connections (``ParkingTable``) and the stalled clients (``StalledClientBudget``), each
/// of which keeps its own order (a heap of deadlines, a queue of stalls) as records that
/// name entries by id and are dropped lazily. Flat arrays, nothing allocated per value:
/// a parked connection must hold no object of its own (``ParkingTable`` says why).
/// swift-collections has no generational table, hence this one. `@inlinable`, so the
/// gateway's tables are specialized for their values across the module boundary.
public struct SlotTable<Value> {
    @usableFromInline var values: [Value?] = []
    @usableFromInline var generations: [UInt32] = []
    @usableFromInline var freeSlots: [UInt32] = []

    @inlinable
    public init() {}

    /// Values held now.
    @inlinable
    public var count: Int { values.count - freeSlots.count }

    /// Puts `value` in a free slot (or a new one).
    @inlinable
    public mutating func insert(_ value: Value) -> SlotID {
        if let slot = freeSlots.popLast() {
            values[Int(slot)] = value
            return SlotID(slot: slot, generation: generations[Int(slot)])
        }
        values.append(value)
        generations.append(0)
        return SlotID(slot: UInt32(values.count - 1), generation: 0)
    }

    /// Whether `id` names a value held now.
    @inlinable
    public func contains(_ id: SlotID) -> Bool {
        let slot = Int(id.slot)
        return slot < values.count && generations[slot] == id.generation && values[slot] != nil
    }

    /// The value `id` names, nil when it names none now.
    @inlinable
    public subscript(id: SlotID) -> Value? {
        contains(id) ? values[Int(id.slot)] : nil
    }

    /// Changes the value `id` names in place; nil (and `body` not called) when it names none.
    @inlinable
    public mutating func update<Result>(_ id: SlotID, _ body: (inout Value) -> Result) -> Result? {
        guard contains(id) else { return nil }
        return body(&values[Int(id.slot)]!)
    }

    /// Takes the value `id` names out; nil when it names none now.
    @inlinable
    @discardableResult
    public mutating func remove(_ id: SlotID) -> Value? {
        guard contains(id) else { return nil }
        let slot = Int(id.slot)
        let value = values[slot]
        values[slot] = nil
        generations[slot] &+= 1
        freeSlots.append(id.slot)
        return value
    }

    /// Takes every value out, in slot order; every id handed out before matches nothing after.
    public mutating func removeAll() -> [Value] {
        var all: [Value] = []
        all.reserveCapacity(count)
        for slot in values.indices {
            if let value = remove(SlotID(slot: UInt32(slot), generation: generations[slot])) { all.append(value) }
        }
        return all
    }

    /// Every value held, in slot order.
    public func forEach(_ body: (Value) throws -> Void) rethrows {
        for case let value? in values { try body(value) }
    }
}

extension SlotTable: Sendable where Value: Sendable {}
