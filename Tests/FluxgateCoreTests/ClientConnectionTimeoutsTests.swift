import Testing

@testable import FluxgateCore

struct ClientConnectionTimeoutsTests {
    func at(_ ms: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: ms * 1_000_000) }

    @Test func keepAliveLifecycle() {
        var timeouts = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60))
        #expect(timeouts.connectionOpened(now: at(0)) == .schedule(deadline: at(10_000)))
        #expect(timeouts.requestHeadReceived() == .cancelTimer)
        #expect(timeouts.timerFired(now: at(10_000)) == .none)  // stale timer while busy
        #expect(timeouts.responseCompleted(now: at(12_000)) == .schedule(deadline: at(72_000)))
        #expect(timeouts.timerFired(now: at(71_999)) == .none)  // early fire is ignored
        #expect(timeouts.bytesReceived(now: at(20_000)) == .schedule(deadline: at(30_000)))
        #expect(timeouts.bytesReceived(now: at(21_000)) == .none)  // the head's clock does not restart
        #expect(timeouts.requestHeadReceived() == .cancelTimer)
        #expect(timeouts.responseCompleted(now: at(22_000)) == .schedule(deadline: at(82_000)))
        #expect(timeouts.timerFired(now: at(82_000)) == .closeIdle)
        #expect(timeouts.phase == .closed)
    }

    /// A drain closes an idle keep-alive connection after a grace, not at once: a next
    /// request already on its way is served; parking is off; other phases unchanged.
    @Test func aDrainClosesAnIdleConnectionAfterTheGraceUnlessItsNextRequestArrives() {
        var timeouts = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60), parkAfter: .seconds(5))
        _ = timeouts.connectionOpened(now: at(0))
        _ = timeouts.requestHeadReceived()
        #expect(timeouts.responseCompleted(now: at(0)) == .schedule(deadline: at(5_000)))
        #expect(timeouts.drainStarted(now: at(2_000), grace: .seconds(1)) == .schedule(deadline: at(3_000)))
        #expect(timeouts.timerFired(now: at(3_000)) == .closeIdle)  // not .park

        var served = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60))
        _ = served.connectionOpened(now: at(0))
        _ = served.requestHeadReceived()
        _ = served.responseCompleted(now: at(0))
        _ = served.drainStarted(now: at(10_000), grace: .seconds(1))
        #expect(served.bytesReceived(now: at(10_001)) == .schedule(deadline: at(20_001)))
        #expect(served.requestHeadReceived() == .cancelTimer && served.phase == .busy)

        // Its idle time ending first ends it first.
        var ending = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60))
        _ = ending.connectionOpened(now: at(0))
        _ = ending.requestHeadReceived()
        _ = ending.responseCompleted(now: at(0))
        #expect(ending.drainStarted(now: at(59_500), grace: .seconds(1)) == .schedule(deadline: at(60_000)))

        // Reading a head or busy: the drain leaves the clocks alone.
        var reading = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60))
        _ = reading.connectionOpened(now: at(0))
        #expect(reading.drainStarted(now: at(1_000), grace: .seconds(1)) == .none && reading.deadline == at(10_000))
        _ = reading.requestHeadReceived()
        #expect(reading.drainStarted(now: at(2_000), grace: .seconds(1)) == .none && reading.deadline == nil)
    }

    @Test func slowHeadIsRejected() {
        var timeouts = ClientConnectionTimeouts(headerTimeout: .milliseconds(500), idleTimeout: .seconds(60))
        _ = timeouts.connectionOpened(now: at(0))
        #expect(timeouts.timerFired(now: at(499)) == .none)
        #expect(timeouts.timerFired(now: at(500)) == .rejectSlowHead)
        #expect(timeouts.timerFired(now: at(900)) == .none)
    }

    @Test func closedConnectionIgnoresEverything() {
        var timeouts = ClientConnectionTimeouts(headerTimeout: .seconds(1), idleTimeout: .seconds(1))
        _ = timeouts.connectionOpened(now: at(0))
        #expect(timeouts.connectionClosed() == .cancelTimer)
        #expect(timeouts.requestHeadReceived() == .none)
        #expect(timeouts.responseCompleted(now: at(1)) == .none)
        #expect(timeouts.timerFired(now: at(5000)) == .none)
    }

    @Test func anIdleConnectionIsOfferedForParkingOnceThenTimesOutAsBefore() {
        var timeouts = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60), parkAfter: .seconds(5))
        _ = timeouts.connectionOpened(now: at(0))
        _ = timeouts.requestHeadReceived()
        #expect(timeouts.responseCompleted(now: at(1_000)) == .schedule(deadline: at(6_000)))
        #expect(timeouts.timerFired(now: at(5_999)) == .none)
        #expect(timeouts.timerFired(now: at(6_000)) == .park(idleDeadline: at(61_000)))
        // Kept (the shell could not park it): the idle timeout still ends it on time.
        #expect(timeouts.phase == .idle)
        #expect(timeouts.deadline == at(61_000))
        #expect(timeouts.timerFired(now: at(60_999)) == .none)
        #expect(timeouts.timerFired(now: at(61_000)) == .closeIdle)
    }

    @Test func bytesBeforeTheParkTimeCancelTheOffer() {
        var timeouts = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60), parkAfter: .seconds(5))
        _ = timeouts.connectionOpened(now: at(0))
        _ = timeouts.requestHeadReceived()
        _ = timeouts.responseCompleted(now: at(0))
        #expect(timeouts.bytesReceived(now: at(2_000)) == .schedule(deadline: at(12_000)))
        #expect(timeouts.timerFired(now: at(12_000)) == .rejectSlowHead)
    }

    @Test func noParkingWhenItIsOffOrNotBeforeTheIdleTimeout() {
        for parkAfter in [Duration.zero, .seconds(60), .seconds(90)] {
            var timeouts = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60), parkAfter: parkAfter)
            _ = timeouts.connectionOpened(now: at(0))
            _ = timeouts.requestHeadReceived()
            #expect(timeouts.responseCompleted(now: at(0)) == .schedule(deadline: at(60_000)))
            #expect(timeouts.timerFired(now: at(60_000)) == .closeIdle)
        }
    }

    /// The send timeout (`timeouts.client_send`) replaces the idle and head timeouts
    /// while the client takes no answers; taking them starts those clocks afresh.
    @Test func aBlockedClientIsTimedBySendNotIdleOrHead() {
        var timeouts = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60), sendTimeout: .seconds(30))
        _ = timeouts.connectionOpened(now: at(0))
        _ = timeouts.requestHeadReceived()
        // Blocked while busy: the exchange times that (not timed here)...
        #expect(timeouts.clientWritable(false, now: at(1_000)) == .none)
        #expect(timeouts.deadline == nil)
        // ...and the time counts once the exchange ended: 30 s from the block.
        #expect(timeouts.responseCompleted(now: at(5_000)) == .schedule(deadline: at(31_000)))
        // Bytes of the next head do not bring the head timeout forward.
        #expect(timeouts.bytesReceived(now: at(6_000)) == .schedule(deadline: at(31_000)))
        #expect(timeouts.timerFired(now: at(16_000)) == .none, "no 408 for a head the gateway does not read")
        #expect(timeouts.timerFired(now: at(30_999)) == .none)
        #expect(timeouts.timerFired(now: at(31_000)) == .closeStalled)
        #expect(timeouts.phase == .closed)

        var reading = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60), sendTimeout: .seconds(30))
        _ = reading.connectionOpened(now: at(0))
        _ = reading.requestHeadReceived()
        _ = reading.responseCompleted(now: at(0))
        #expect(reading.clientWritable(false, now: at(1_000)) == .schedule(deadline: at(31_000)))
        #expect(reading.clientWritable(false, now: at(2_000)) == .none, "still the first block")
        #expect(reading.clientWritable(true, now: at(20_000)) == .schedule(deadline: at(80_000)))
        #expect(reading.timerFired(now: at(31_000)) == .none)
        #expect(reading.bytesReceived(now: at(40_000)) == .schedule(deadline: at(50_000)))
        #expect(reading.clientWritable(false, now: at(41_000)) == .schedule(deadline: at(71_000)))
        #expect(reading.clientWritable(true, now: at(45_000)) == .schedule(deadline: at(55_000)), "the head clock afresh")
        #expect(reading.timerFired(now: at(55_000)) == .rejectSlowHead)
    }

    /// The admin listener's variant: the send timeout runs while an answer is being
    /// served, too; zero turns it off.
    @Test func sendTimedWhileBusyAndOff() {
        var admin = ClientConnectionTimeouts(
            headerTimeout: .seconds(10), idleTimeout: .seconds(60), sendTimeout: .seconds(30), sendTimedWhileBusy: true)
        _ = admin.connectionOpened(now: at(0))
        _ = admin.requestHeadReceived()
        #expect(admin.clientWritable(false, now: at(1_000)) == .schedule(deadline: at(31_000)))
        #expect(admin.timerFired(now: at(31_000)) == .closeStalled)

        var off = ClientConnectionTimeouts(headerTimeout: .seconds(10), idleTimeout: .seconds(60))
        _ = off.connectionOpened(now: at(0))
        _ = off.requestHeadReceived()
        _ = off.responseCompleted(now: at(0))
        #expect(off.clientWritable(false, now: at(1_000)) == .none)
        #expect(off.deadline == at(60_000))
        #expect(off.timerFired(now: at(60_000)) == .closeIdle)
    }
}
