import Testing

@testable import FluxgateCore

struct ParkingTableTests {
    func at(_ ms: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: ms * 1_000_000) }

    func insert<T>(_ value: T, until ms: Int64, into table: inout ParkingTable<T>) throws -> ParkingTable<T>.ID {
        let id = table.insert(value, until: at(ms))
        return try #require(id)
    }

    @Test func entriesLeaveByIdOrByDeadlineOnce() throws {
        var table = ParkingTable<String>()
        let a = try insert("a", until: 100, into: &table)
        let b = try insert("b", until: 50, into: &table)
        #expect(table.count == 2)
        #expect(table.nextDeadline == at(50))
        #expect(table.removeExpired(now: at(49)).isEmpty)
        #expect(table.removeExpired(now: at(50)) == ["b"])
        #expect(table.remove(b) == nil, "an expired entry's id matches nothing")
        #expect(table.remove(SlotID(packed: a.packed)) == "a")
        #expect(table.remove(a) == nil, "taken once")
        #expect(table.removeExpired(now: at(1_000)).isEmpty, "its expiry fires into nothing")
        #expect(table.count == 0)
    }

    /// The entry idle longest (earliest deadline) goes first; entries that left are
    /// skipped, and what was taken matches its id no more.
    @Test func theOldestEntryMakesRoom() throws {
        var table = ParkingTable<String>()
        let early = try insert("early", until: 100, into: &table)
        _ = try insert("late", until: 300, into: &table)
        _ = try insert("middle", until: 200, into: &table)
        #expect(table.remove(early) == "early", "woken by its client")
        #expect(table.removeOldest() == "middle")
        #expect(table.count == 1)
        #expect(table.removeExpired(now: at(250)).isEmpty, "the taken entry's expiry is gone with it")
        #expect(table.removeOldest() == "late")
        #expect(table.removeOldest() == nil)
        #expect(table.count == 0 && table.pendingExpiries == 0)
    }

    @Test func aReusedSlotDoesNotAnswerToItsFormerId() throws {
        var table = ParkingTable<String>()
        let first = try insert("first", until: 100, into: &table)
        #expect(table.remove(first) == "first")
        let second = try insert("second", until: 200, into: &table)
        #expect(second.slot == first.slot)
        #expect(table.remove(first) == nil)
        // The first entry's expiry, still in the heap, must not take the second.
        #expect(table.removeExpired(now: at(150)).isEmpty)
        #expect(table.removeExpired(now: at(200)) == ["second"])
    }

    @Test func removeAllEmptiesTheTableAndRetiresEveryId() throws {
        var table = ParkingTable<Int>()
        var ids: [ParkingTable<Int>.ID] = []
        for value in 0..<5 { ids.append(try insert(value, until: Int64(value), into: &table)) }
        #expect(table.removeAll().sorted() == [0, 1, 2, 3, 4])
        #expect(table.count == 0)
        #expect(table.nextDeadline == nil)
        let again = try insert(9, until: 10, into: &table)
        #expect(ids.allSatisfy { table.remove($0) == nil })
        #expect(table.remove(again) == 9)
    }

    @Test func expiriesOfEntriesThatLeftDoNotPileUp() throws {
        var table = ParkingTable<Int>()
        // Parked and woken again and again (a client that sends every few seconds):
        // each leaves an expiry behind until the heap is rebuilt without them.
        for round in 0..<10_000 {
            let id = try insert(round, until: 60_000 + Int64(round), into: &table)
            #expect(table.remove(id) == round)
        }
        #expect(table.pendingExpiries <= 2 * 1_025)
        #expect(table.count == 0)
    }

    @Test func aFullTableRefuses() {
        var table = ParkingTable<Int>(maxSlots: 2)
        #expect(table.insert(1, until: at(1)) != nil)
        #expect(table.insert(2, until: at(1)) != nil)
        #expect(table.insert(3, until: at(1)) == nil)
    }
}
