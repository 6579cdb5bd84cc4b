import FluxgateCore
import Testing

/// The pool's idle side with exact times: what a released connection gets, and how
/// often the parked ones are checked.
struct IdleConnectionPolicyTests {
    let now = MonotonicTime(nanoseconds: 5_000_000_000)

    @Test func belowTheCapAConnectionIsParkedForTheIdleTimeout() {
        let policy = IdleConnectionPolicy(maxIdlePerUpstream: 512, idleTimeout: .seconds(60))
        #expect(policy.release(parked: 0, retired: false, now: now) == .park(until: now + .seconds(60)))
        #expect(policy.release(parked: 511, retired: false, now: now) == .park(until: now + .seconds(60)))
    }

    @Test func atTheCapItIsParkedForTheGraceOnly() {
        let policy = IdleConnectionPolicy(maxIdlePerUpstream: 512, idleTimeout: .seconds(60))
        #expect(policy.excessGrace == .seconds(1))
        #expect(policy.release(parked: 512, retired: false, now: now) == .park(until: now + .seconds(1)))
        #expect(policy.release(parked: 900, retired: false, now: now) == .park(until: now + .seconds(1)))
    }

    @Test func theGraceIsNeverLongerThanTheIdleTimeout() {
        let policy = IdleConnectionPolicy(maxIdlePerUpstream: 1, idleTimeout: .milliseconds(300))
        #expect(policy.excessGrace == .milliseconds(300))
        #expect(policy.release(parked: 1, retired: false, now: now) == .park(until: now + .milliseconds(300)))
    }

    /// `pool.max_requests_per_connection` and `max_connection_age`: reuse ends at the
    /// count (the request that reaches it is the last) and at the age; 0 bounds nothing.
    @Test func reuseEndsAtTheRequestCountOrTheAge() {
        let opened = now
        let policy = IdleConnectionPolicy(maxIdlePerUpstream: 8, idleTimeout: .seconds(4), maxRequests: 3, maxAge: .seconds(3600))
        #expect(policy.retirement(served: 2, openedAt: opened, now: opened + .seconds(1)) == nil)
        #expect(policy.retirement(served: 3, openedAt: opened, now: opened + .seconds(1)) != nil)
        #expect(policy.retirement(served: 1, openedAt: opened, now: opened + .seconds(3599)) == nil)
        #expect(policy.retirement(served: 1, openedAt: opened, now: opened + .seconds(3600)) != nil)
        let unbounded = IdleConnectionPolicy(maxIdlePerUpstream: 8, idleTimeout: .seconds(4))
        #expect(unbounded.retirement(served: 1_000_000, openedAt: opened, now: opened + .seconds(86_400 * 365)) == nil)
        #expect(PoolConfig().maxRequestsPerConnection == 1000 && PoolConfig().maxConnectionAge == .seconds(3600), "nginx's defaults")
        // Both bounds can be written off in the file (a 0s age included).
        let off = try? ConfigLoader.load(yaml: "pool: { max_requests_per_connection: 0, max_connection_age: 0s }")
        #expect(off?.pool.maxRequestsPerConnection == 0 && off?.pool.maxConnectionAge == .zero)
    }

    @Test func noIdleConnectionsOrARetiredSlotMeansClose() {
        let none = IdleConnectionPolicy(maxIdlePerUpstream: 0, idleTimeout: .seconds(60))
        #expect(none.release(parked: 0, retired: false, now: now) == .close)
        let policy = IdleConnectionPolicy(maxIdlePerUpstream: 512, idleTimeout: .seconds(60))
        #expect(policy.release(parked: 0, retired: true, now: now) == .close)
    }

    @Test func theSweepRunsAtAQuarterOfTheIdleTimeoutWithin10To250Milliseconds() {
        let interval = { IdleConnectionPolicy(maxIdlePerUpstream: 8, idleTimeout: $0).sweepInterval }
        #expect(interval(.seconds(60)) == .milliseconds(250))
        #expect(interval(.seconds(1)) == .milliseconds(250))
        #expect(interval(.milliseconds(200)) == .milliseconds(50))
        #expect(interval(.milliseconds(20)) == .milliseconds(10))
        #expect(interval(.zero) == .milliseconds(10))
    }
}

struct ConnectionCapTests {
    func cancel(_ cap: inout ConnectionCap, _ id: Int) -> Bool { cap.cancel(0, id: id) }

    func at(_ ms: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: ms * 1_000_000) }

    @Test func noCapAlwaysConnects() {
        var cap = ConnectionCap(limit: 0, upstreams: 1)
        for id in 0..<1000 { #expect(cap.request(0, id: id, deadline: at(1000)) == .connect) }
    }

    @Test func beyondTheCapRequestsWaitAndAreServedInOrder() {
        var cap = ConnectionCap(limit: 2, upstreams: 2)
        #expect(cap.request(0, id: 1, deadline: at(1000)) == .connect)
        #expect(cap.request(0, id: 2, deadline: at(1000)) == .connect)
        #expect(cap.request(0, id: 3, deadline: at(1000)) == .wait)
        #expect(cap.request(0, id: 4, deadline: at(1100)) == .wait)
        #expect(cap.request(1, id: 5, deadline: at(1000)) == .connect)  // caps are per upstream
        #expect(cap.released(0) == 3)  // a released connection goes to the first waiter
        #expect(cap.open[0] == 2)
        #expect(cap.closed(0) == 4)  // a closed one lets the next waiter open a new one
        #expect(cap.open[0] == 2)
        #expect(cap.closed(0) == nil)
        #expect(cap.open[0] == 1)
        #expect(cap.released(0) == nil)
    }

    @Test func connectsInProgressAreBoundedToo() {
        var cap = ConnectionCap(limit: 0, upstreams: 2, maxConnecting: 2)
        #expect(cap.request(0, id: 1, deadline: at(1000)) == .connect)
        #expect(cap.request(0, id: 2, deadline: at(1000)) == .connect)
        #expect(cap.request(0, id: 3, deadline: at(1000)) == .wait)
        #expect(cap.request(0, id: 4, deadline: at(1000)) == .wait)
        #expect(cap.request(1, id: 5, deadline: at(1000)) == .connect)  // per upstream
        #expect(cap.connecting == [2, 1])
        // A connect that finishes lets the first waiter start one.
        #expect(cap.connectFinished(0) == 3)
        #expect(cap.connecting[0] == 2 && cap.open[0] == 3)
        // A released connection goes to the next waiter: no connect.
        #expect(cap.released(0) == 4)
        #expect(cap.connectFinished(0) == nil)
        #expect(cap.connectFinished(0) == nil)
        #expect(cap.connecting[0] == 0)
        #expect(cap.request(0, id: 6, deadline: at(1000)) == .connect)
        // A failed connect: closed while still connecting, then finished.
        #expect(cap.request(0, id: 7, deadline: at(1000)) == .connect)
        #expect(cap.request(0, id: 8, deadline: at(1000)) == .wait)
        #expect(cap.closed(0) == nil)  // still two connecting
        #expect(cap.connectFinished(0) == 8)
        // A reload lifting the limit: requests connect at once.
        cap.reconfigure(limit: 0, upstreams: 2, maxConnecting: 0)
        for id in 9..<100 { #expect(cap.request(0, id: id, deadline: at(1000)) == .connect) }
    }

    @Test func theCapAndTheConnectLimitTogether() {
        var cap = ConnectionCap(limit: 2, upstreams: 1, maxConnecting: 1)
        #expect(cap.request(0, id: 1, deadline: at(1000)) == .connect)
        #expect(cap.request(0, id: 2, deadline: at(1000)) == .wait)  // one connecting
        #expect(cap.connectFinished(0) == 2)
        #expect(cap.request(0, id: 3, deadline: at(1000)) == .wait)
        #expect(cap.connectFinished(0) == nil)  // at the cap: two open
        #expect(cap.closed(0) == 3)
        #expect(cap.open[0] == 2 && cap.connecting[0] == 1)
    }

    @Test func waitersExpireAtTheirDeadlineAndCanLeave() {
        var cap = ConnectionCap(limit: 1, upstreams: 1)
        _ = cap.request(0, id: 1, deadline: at(1000))
        _ = cap.request(0, id: 2, deadline: at(1000))
        _ = cap.request(0, id: 3, deadline: at(1500))
        _ = cap.request(0, id: 4, deadline: at(1600))
        #expect(cancel(&cap, 3))
        #expect(!cancel(&cap, 3))
        #expect(cap.expire(now: at(999)).isEmpty)
        #expect(cap.expire(now: at(1000)).map(\.id) == [2])
        #expect(cap.hasWaiters)
        #expect(cap.expire(now: at(2000)).map(\.id) == [4])
        #expect(!cap.hasWaiters)
    }
}
