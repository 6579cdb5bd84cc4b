import FluxgateCore
import Testing

@testable import FluxorDemo

/// The overload model with time passed in: exact completion times, no sleeps.
struct ProcessorSharingTests {
    func ms(_ value: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: value * 1_000_000) }

    @Test func underCapacityEveryRequestTakesItsOwnTime() {
        var model = ProcessorSharing(capacity: 2, now: ms(0))
        _ = model.arrive(id: 1, work: .milliseconds(20), now: ms(0))
        _ = model.arrive(id: 2, work: .milliseconds(30), now: ms(5))
        #expect(model.nextCompletion == ms(20))
        #expect(model.advance(to: ms(19)) == [])
        #expect(model.advance(to: ms(20)) == [1])
        #expect(model.nextCompletion == ms(35))
        #expect(model.advance(to: ms(35)) == [2])
        #expect(model.inFlight == 0)
    }

    /// Beyond capacity everyone slows down together: 4 requests of 20 ms on a
    /// capacity of 2 run at half speed and all finish at 40 ms.
    @Test func overCapacityTheInstanceIsShared() {
        var model = ProcessorSharing(capacity: 2, now: ms(0))
        for id in 1...4 { _ = model.arrive(id: id, work: .milliseconds(20), now: ms(0)) }
        #expect(model.nextCompletion == ms(40))
        #expect(model.advance(to: ms(39)) == [])
        #expect(Set(model.advance(to: ms(40))) == [1, 2, 3, 4])
    }

    @Test func rateRecoversAsRequestsLeave() {
        var model = ProcessorSharing(capacity: 1, now: ms(0))
        _ = model.arrive(id: 1, work: .milliseconds(10), now: ms(0))
        _ = model.arrive(id: 2, work: .milliseconds(30), now: ms(0))
        // Both at rate 1/2: request 1 needs 10 ms of work → done at 20 ms; request 2
        // then has 20 ms left at full speed → done at 40 ms.
        #expect(model.advance(to: ms(20)) == [1])
        #expect(model.nextCompletion == ms(40))
        #expect(model.advance(to: ms(100)) == [2])
    }

    /// The collapse the benchmark shows: at 8x capacity a 20 ms request takes 160 ms.
    @Test(arguments: [(25, 20), (50, 20), (100, 40), (200, 80), (400, 160)])
    func latencyGrowsWithConcurrency(concurrency: Int, expectedMs: Int64) {
        var model = ProcessorSharing(capacity: 50, now: ms(0))
        for id in 0..<concurrency { _ = model.arrive(id: id, work: .milliseconds(20), now: ms(0)) }
        #expect(model.nextCompletion == ms(expectedMs))
    }
}
