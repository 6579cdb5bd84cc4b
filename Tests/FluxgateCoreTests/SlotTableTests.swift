import Testing

@testable import FluxgateCore

/// The generational table under the loops' timers, parked connections and stalled
/// clients: an id matches its value until the value is taken out, never after —
/// not even when its slot holds another value.
struct SlotTableTests {
    @Test func anIdMatchesItsValueOnlyWhileItIsHeld() {
        var table = SlotTable<String>()
        let a = table.insert("a")
        let b = table.insert("b")
        #expect(table.count == 2)
        #expect(table[a] == "a" && table[b] == "b")
        #expect(table.remove(a) == "a")
        #expect(table.remove(a) == nil, "taken once")
        #expect(table[a] == nil && !table.contains(a))
        let c = table.insert("c")
        #expect(c.slot == a.slot, "the free slot is reused")
        #expect(c.generation != a.generation)
        #expect(table[a] == nil, "the old id does not match the slot's new value")
        #expect(table.update(a) { $0 = "x" } == nil)
        #expect(table.update(c) { value -> Int in value += "!"; return value.count } == 2)
        #expect(table[c] == "c!")
        #expect(table[SlotID(packed: c.packed)] == "c!")
        #expect(table[SlotID(slot: 99, generation: 0)] == nil, "a slot never used")
        var seen: [String] = []
        table.forEach { seen.append($0) }
        #expect(seen == ["c!", "b"])
    }

    @Test func removeAllEmptiesAndOutdatesEveryId() {
        var table = SlotTable<Int>()
        let ids = (0..<5).map { table.insert($0) }
        _ = table.remove(ids[2])
        #expect(table.removeAll() == [0, 1, 3, 4])
        #expect(table.count == 0)
        #expect(ids.allSatisfy { !table.contains($0) })
        let again = table.insert(7)
        #expect(ids.allSatisfy { $0 != again })
        #expect(table.count == 1)
    }

    /// Random inserts and removals against a dictionary: the table answers as the
    /// dictionary does for every id ever handed out, and never holds more slots than
    /// the most values held at once.
    @Test func randomChurnAgreesWithADictionary() {
        var random = SystemRandomNumberGenerator()
        var table = SlotTable<Int>()
        var model: [SlotID: Int] = [:]
        var handedOut: [SlotID] = []
        var most = 0
        for step in 0..<5_000 {
            if model.isEmpty || Int.random(in: 0..<3, using: &random) > 0 {
                let id = table.insert(step)
                #expect(model[id] == nil)
                model[id] = step
                handedOut.append(id)
            } else {
                let id = handedOut.randomElement(using: &random)!
                #expect(table.remove(id) == model.removeValue(forKey: id))
            }
            most = max(most, model.count)
            #expect(table.count == model.count)
        }
        for id in handedOut { #expect(table[id] == model[id]) }
        #expect(table.values.count == most)
    }
}
