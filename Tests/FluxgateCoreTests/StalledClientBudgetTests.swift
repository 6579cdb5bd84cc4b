import Testing

@testable import FluxgateCore

struct StalledClientBudgetTests {
    typealias Budget = StalledClientBudget<String>

    /// A connection's entry, kept between calls as the gateway's handler keeps it.
    final class Connection {
        let name: String
        var id: Budget.ID?
        init(_ name: String) { self.name = name }

        func hold(_ bytes: Int, in budget: inout Budget, limit: Int) -> [String] {
            budget.hold(&id, name, bytes: bytes, limit: limit)
        }
    }

    @Test func underTheLimitNothingClosesAndBytesAreSummed() {
        var budget = Budget()
        let a = Connection("a"), b = Connection("b")
        #expect(a.hold(40_000, in: &budget, limit: 100_000).isEmpty)
        #expect(b.hold(50_000, in: &budget, limit: 100_000).isEmpty)
        #expect(budget.total == 90_000)
        #expect(budget.count == 2)
        #expect(a.hold(10_000, in: &budget, limit: 100_000).isEmpty, "its bytes changed, still stalled")
        #expect(budget.total == 60_000)
        #expect(b.hold(0, in: &budget, limit: 100_000).isEmpty, "it keeps up again")
        #expect(b.id == nil)
        #expect(budget.total == 10_000)
        #expect(budget.count == 1)
        #expect(Connection("never stalled").hold(0, in: &budget, limit: 100_000).isEmpty)
        #expect(budget.count == 1)
    }

    /// Past the limit, the connections stalled longest go first — as many as it takes —
    /// whoever pushed the total over.
    @Test func pastTheLimitTheLongestStalledAreClosedFirst() {
        var budget = Budget()
        let a = Connection("a"), b = Connection("b"), c = Connection("c"), d = Connection("d")
        #expect(a.hold(40, in: &budget, limit: 100).isEmpty)
        #expect(b.hold(40, in: &budget, limit: 100).isEmpty)
        #expect(c.hold(10, in: &budget, limit: 100).isEmpty)
        #expect(b.hold(45, in: &budget, limit: 100).isEmpty, "95: within")
        #expect(d.hold(70, in: &budget, limit: 100) == ["a", "b"], "165 → 125 → 80")
        #expect(budget.total == 80)
        #expect(budget.count == 2)
        #expect(a.hold(0, in: &budget, limit: 100).isEmpty, "a closed one leaving again changes nothing")
        #expect(budget.total == 80)
    }

    /// A connection whose own bytes grow past the limit while it is the longest stalled
    /// is the one closed.
    @Test func aConnectionCanCloseItself() {
        var budget = Budget()
        let a = Connection("a"), b = Connection("b")
        #expect(a.hold(30, in: &budget, limit: 100).isEmpty)
        #expect(b.hold(30, in: &budget, limit: 100).isEmpty)
        #expect(a.hold(90, in: &budget, limit: 100) == ["a"])
        #expect(budget.total == 30)
        // Its stale id: holding again enters at the back, as a new stall.
        #expect(a.hold(20, in: &budget, limit: 100).isEmpty)
        #expect(Connection("c").hold(60, in: &budget, limit: 100) == ["b"], "b stalled before a's new entry")
    }

    /// A connection that resumed is not closed for an old stall, and its slot is reused.
    @Test func resumedConnectionsAreNotClosed() {
        var budget = Budget()
        let a = Connection("a"), b = Connection("b"), c = Connection("c")
        _ = a.hold(50, in: &budget, limit: 100)
        _ = b.hold(40, in: &budget, limit: 100)
        _ = a.hold(0, in: &budget, limit: 100)
        #expect(c.hold(70, in: &budget, limit: 100) == ["b"])
        #expect(budget.total == 70)
    }

    @Test func noLimitClosesNothingButStillCounts() {
        var budget = Budget()
        for name in 0..<100 { #expect(Connection("\(name)").hold(1 << 20, in: &budget, limit: 0).isEmpty) }
        #expect(budget.total == 100 << 20)
        #expect(budget.count == 100)
    }

    /// One connection stalled for long and many short stalls behind it: the stall queue
    /// keeps no record of each short one.
    @Test func shortStallsDoNotGrowTheQueue() {
        var budget = Budget()
        let long = Connection("long"), short = Connection("short")
        _ = long.hold(10, in: &budget, limit: 1_000)
        for _ in 0..<10_000 {
            _ = short.hold(10, in: &budget, limit: 1_000)
            _ = short.hold(0, in: &budget, limit: 1_000)
        }
        #expect(budget.queuedRecords <= 65)
        #expect(budget.count == 1)
        #expect(Connection("big").hold(995, in: &budget, limit: 1_000) == ["long"], "the long stall kept its place")
    }
}
