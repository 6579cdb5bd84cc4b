import Testing

@testable import FluxgateCore

struct RoundRobinTests {
    @Test func equalWeightsArePlainRoundRobin() {
        let rr = RoundRobin(weights: [1, 1, 1])
        #expect((0..<7).map { rr.pick($0) } == [0, 1, 2, 0, 1, 2, 0])
    }

    /// nginx's smooth weighted round-robin spreads the heavy upstream out instead of
    /// sending it five requests in a row.
    @Test func weightsFollowTheSmoothOrder() {
        #expect(RoundRobin(weights: [5, 1, 1]).schedule == [0, 0, 1, 0, 2, 0, 0])
        #expect(RoundRobin(weights: [2, 1]).schedule == [0, 1, 0])
        #expect(RoundRobin(weights: [4, 2, 2]).schedule == [0, 1, 2, 0])  // reduced by the gcd
    }

    @Test func shareOverManyPicksMatchesWeights() {
        let rr = RoundRobin(weights: [3, 1, 6])
        var counts = [0, 0, 0]
        for ticket in 0..<1000 { counts[rr.pick(ticket)!] += 1 }
        #expect(counts == [300, 100, 600])
    }

    /// `least_requests`: the less loaded of the next two picks; on ties the picks go
    /// round as plain round-robin; one loaded upstream is avoided except when both
    /// candidates are it (a single upstream); weights shape the candidates.
    @Test func leastLoadedOfTwoChoices() {
        let rr = RoundRobin(weights: [1, 1, 1])
        #expect((0..<6).map { rr.pick($0) { _ in 0 } } == [0, 1, 2, 0, 1, 2])
        let stuck = [0: 0, 1: 9, 2: 0]
        #expect((0..<6).map { rr.pick($0) { stuck[$0]! } } == [0, 2, 2, 0, 2, 2])
        let busier = [0: 3, 1: 1, 2: 2]
        #expect((0..<3).map { rr.pick($0) { busier[$0]! } } == [1, 1, 2])
        #expect(RoundRobin(weights: [1]).pick(5) { _ in 100 } == 0)
        #expect(RoundRobin(weights: []).pick(5) { _ in 0 } == nil)
        let weighted = RoundRobin(weights: [3, 1])
        var counts = [0, 0]
        for ticket in 0..<400 { counts[weighted.pick(ticket) { _ in 0 }!] += 1 }
        #expect(counts == [300, 100])
    }

    @Test func noUpstreamsPickNothing() {
        #expect(RoundRobin(weights: []).pick(3) == nil)
    }

    @Test func failoverWalksEveryUpstreamOnce() {
        let rr = RoundRobin(weights: [1, 1, 1])
        #expect(rr.failover(after: 1, tried: [1]) == 2)
        #expect(rr.failover(after: 2, tried: [1, 2]) == 0)
        #expect(rr.failover(after: 0, tried: [0, 1, 2]) == nil)
    }

    /// A down upstream drops out of the order; the others keep their smooth shares.
    @Test func onlyReadyUpstreamsArePicked() {
        #expect(RoundRobin(weights: [1, 1, 1], ready: [true, false, true]).schedule == [0, 2])
        #expect(RoundRobin(weights: [5, 1, 1], ready: [false, true, true]).schedule == [1, 2])
        #expect(RoundRobin(weights: [5, 1, 3], ready: [true, false, true]).schedule == RoundRobin(weights: [5, 3]).schedule.map { $0 == 1 ? 2 : 0 })
        let none = RoundRobin(weights: [1, 1], ready: [false, false])
        #expect(none.pick(0) == nil)
        #expect(none.failover(after: 0, tried: [0]) == nil)
    }

    @Test func failoverSkipsUpstreamsThatAreNotReady() {
        let rr = RoundRobin(weights: [1, 1, 1], ready: [true, false, true])
        #expect(rr.failover(after: 0, tried: [0]) == 2)
        #expect(rr.failover(after: 2, tried: [2]) == 0)
        #expect(rr.failover(after: 2, tried: [0, 2]) == nil)
    }
}
