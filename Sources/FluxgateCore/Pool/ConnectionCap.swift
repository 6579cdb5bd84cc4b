import DequeModule

/// The per-upstream connection cap of one event loop's pool (`pool.max_connections`,
/// HAProxy's server `maxconn`, Envoy's `max_connections`): how many connections to an
/// upstream may be open at once, and who waits, in arrival order, for one beyond that.
///
/// And how many may be *connecting* at once (`pool.max_connecting`): a burst of new
/// requests beyond that waits for the first connection that connects or is released,
/// instead of every request opening its own. Ten thousand new clients at once made the
/// gateway open 11 000 upstream connections in a second, each request waiting behind all
/// the connects (p99 1.2 s, nginx's 0.5-0.6); with 64 connecting at once it opened 5 300
/// and the p99 was 0.42-0.50 s (docs/PERFORMANCE.md).
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
    /// Connects in progress per upstream.
    public private(set) var connecting: [Int]
    /// Connects that may be in progress at once per upstream (`pool.max_connecting`); 0 = any.
    public private(set) var maxConnecting: Int
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

    public init(limit: Int, upstreams: Int, maxConnecting: Int = 0) {
        self.limit = limit
        self.maxConnecting = maxConnecting
        self.open = Array(repeating: 0, count: upstreams)
        self.connecting = Array(repeating: 0, count: upstreams)
        self.waiting = Array(repeating: [], count: upstreams)
    }

    /// A reload: new limits (waiters are served as connections are released, connect
    /// or close), and room for `upstreams` slots.
    public mutating func reconfigure(limit: Int, upstreams: Int, maxConnecting: Int = 0) {
        self.limit = limit
        self.maxConnecting = maxConnecting
        while open.count < upstreams {
            open.append(0)
            connecting.append(0)
            waiting.append([])
        }
    }

    /// A request needs a new connection to `upstream` (no idle one was available): it
    /// connects when both the cap and the connects in progress leave room.
    public mutating func request(_ upstream: Int, id: Int, deadline: MonotonicTime) -> Admission {
        if (limit == 0 || open[upstream] < limit) && (maxConnecting == 0 || connecting[upstream] < maxConnecting) {
            open[upstream] += 1
            connecting[upstream] += 1
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
    /// open a new one in its place (returned; it counts as open and connecting).
    public mutating func closed(_ upstream: Int) -> Int? {
        open[upstream] = max(0, open[upstream] - 1)
        return nextConnect(upstream)
    }

    /// A connect to `upstream` finished (either way): the first waiter may start one.
    public mutating func connectFinished(_ upstream: Int) -> Int? {
        connecting[upstream] = max(0, connecting[upstream] - 1)
        return nextConnect(upstream)
    }

    private mutating func nextConnect(_ upstream: Int) -> Int? {
        guard limit == 0 || open[upstream] < limit, maxConnecting == 0 || connecting[upstream] < maxConnecting,
            let waiter = waiting[upstream].popFirst()
        else { return nil }
        open[upstream] += 1
        connecting[upstream] += 1
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
