import DequeModule

/// The per-upstream connection cap of one event loop's pool (`pool.max_connections`,
/// HAProxy's server `maxconn`, Envoy's `max_connections`): how many connections to an
/// upstream may be open at once, and who waits, in arrival order, for one beyond that.
///
/// Without a cap a burst of N concurrent requests opens N upstream connections (and
/// the upstream's accept queue sees them all at once); with one, the excess waits for
/// a connection to be released and reuses it. A waiter gives up at its deadline (the
/// connect timeout: to the client, waiting for a connection is part of connecting).
///
/// Pure: the pool feeds events in and carries out the answers; waiters are opaque ids.
public struct ConnectionCap: Sendable, Equatable {
    /// Connections per upstream; 0 = no cap.
    public private(set) var limit: Int
    public private(set) var open: [Int]
    private var waiting: [Deque<Waiter>]

    struct Waiter: Sendable, Equatable {
        var id: Int
        var deadline: MonotonicTime
    }

    public enum Admission: Sendable, Equatable {
        /// Open a new connection (it now counts as open).
        case connect
        /// Wait until ``released(_:)`` or ``closed(_:)`` hands this id a connection.
        case wait
    }

    public init(limit: Int, upstreams: Int) {
        self.limit = limit
        self.open = Array(repeating: 0, count: upstreams)
        self.waiting = Array(repeating: [], count: upstreams)
    }

    /// A reload: a new limit (waiters are served as connections are released or
    /// close), and room for `upstreams` slots.
    public mutating func reconfigure(limit: Int, upstreams: Int) {
        self.limit = limit
        while open.count < upstreams {
            open.append(0)
            waiting.append([])
        }
    }

    /// A request needs a new connection to `upstream` (no idle one was available).
    public mutating func request(_ upstream: Int, id: Int, deadline: MonotonicTime) -> Admission {
        if limit == 0 || open[upstream] < limit {
            open[upstream] += 1
            return .connect
        }
        waiting[upstream].append(Waiter(id: id, deadline: deadline))
        return .wait
    }

    public func waiters(_ upstream: Int) -> Int { waiting[upstream].count }

    /// A connection to `upstream` finished an exchange and is reusable: the first
    /// waiter gets it (returned), else it goes idle (nil).
    public mutating func released(_ upstream: Int) -> Int? {
        waiting[upstream].popFirst()?.id
    }

    /// A connection to `upstream` closed (or failed to connect): the first waiter may
    /// open a new one in its place (returned; it counts as open again).
    public mutating func closed(_ upstream: Int) -> Int? {
        open[upstream] = max(0, open[upstream] - 1)
        guard let waiter = waiting[upstream].popFirst() else { return nil }
        open[upstream] += 1
        return waiter.id
    }

    /// A waiter went away (its client left); false if it was not waiting.
    public mutating func cancel(_ upstream: Int, id: Int) -> Bool {
        guard let index = waiting[upstream].firstIndex(where: { $0.id == id }) else { return false }
        waiting[upstream].remove(at: index)
        return true
    }

    /// Waiters whose deadline passed, removed, by upstream.
    public mutating func expire(now: MonotonicTime) -> [(upstream: Int, id: Int)] {
        var expired: [(Int, Int)] = []
        for upstream in waiting.indices {
            // Arrival order is deadline order (one timeout for all), so only the front expires.
            while let first = waiting[upstream].first, first.deadline <= now {
                waiting[upstream].removeFirst()
                expired.append((upstream, first.id))
            }
        }
        return expired
    }

    public var hasWaiters: Bool { waiting.contains { !$0.isEmpty } }
}
