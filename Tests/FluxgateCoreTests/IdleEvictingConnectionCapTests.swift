import FluxgateCore
import Testing

/// The admin listener's cap: a new connection at the cap takes the place of the one idle
/// longest; one being answered is never closed to make room.
struct IdleEvictingConnectionCapTests {
    func at(_ milliseconds: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: milliseconds * 1_000_000) }

    @Test func belowTheCapEveryConnectionIsAdmitted() {
        var cap = IdleEvictingConnectionCap<Int>(capacity: 3)
        #expect(cap.open(1, now: at(0)) == .admitted)
        #expect(cap.open(2, now: at(1)) == .admitted)
        #expect(cap.open(3, now: at(2)) == .admitted)
        #expect(cap.count == 3)
    }

    @Test func atTheCapTheConnectionIdleLongestMakesRoom() {
        var cap = IdleEvictingConnectionCap<Int>(capacity: 3)
        _ = cap.open(1, now: at(0))
        _ = cap.open(2, now: at(1))
        _ = cap.open(3, now: at(2))
        // 1 is answered at 10 ms: waiting for its next request since then, after 2 and 3.
        cap.answering(1)
        cap.answered(1, now: at(10))
        #expect(cap.open(4, now: at(20)) == .admittedClosing(2))
        #expect(cap.open(5, now: at(21)) == .admittedClosing(3))
        #expect(cap.open(6, now: at(22)) == .admittedClosing(1))
        #expect(cap.count == 3)
    }

    @Test func aConnectionBeingAnsweredIsNeverClosedToMakeRoom() {
        var cap = IdleEvictingConnectionCap<Int>(capacity: 2)
        _ = cap.open(1, now: at(0))
        _ = cap.open(2, now: at(1))
        cap.answering(1)
        #expect(cap.open(3, now: at(5)) == .admittedClosing(2))
        cap.answering(3)
        #expect(cap.open(4, now: at(6)) == .refused)  // both being answered
        #expect(cap.count == 2)
        cap.answered(3, now: at(7))
        #expect(cap.open(4, now: at(8)) == .admittedClosing(3))
    }

    @Test func aClosedConnectionFreesItsPlaceAndOneClosedToMakeRoomIsForgotten() {
        var cap = IdleEvictingConnectionCap<Int>(capacity: 2)
        _ = cap.open(1, now: at(0))
        _ = cap.open(2, now: at(1))
        #expect(cap.open(3, now: at(2)) == .admittedClosing(1))
        // 1's close, and any late report about it, change nothing.
        cap.answering(1)
        cap.answered(1, now: at(3))
        cap.closed(1)
        #expect(cap.count == 2)
        cap.closed(2)
        #expect(cap.count == 1)
        #expect(cap.open(4, now: at(4)) == .admitted)
        cap.answering(3)
        cap.closed(3)  // closed while being answered
        #expect(cap.count == 1)
    }

    @Test func aCapBelowOneIsOne() {
        var cap = IdleEvictingConnectionCap<Int>(capacity: 0)
        #expect(cap.open(1, now: at(0)) == .admitted)
        #expect(cap.open(2, now: at(1)) == .admittedClosing(1))
    }
}
