/// What the upstream pool does with a keep-alive connection whose exchange ended, and
/// when it checks its parked ones: the idle side's decisions (the pool holds the
/// sockets, the lists and the timer, and carries these out).
///
/// A released connection is parked for `pool.idle_timeout` while its upstream has fewer
/// than `pool.max_idle_per_upstream` parked; above that it is parked only for a short
/// grace, 1 s (or the idle timeout when that is shorter), instead of being closed at
/// once. Under a burst of thousands of concurrent requests (10 000 keep-alive clients)
/// closing at release turned every wave into thousands of new connects — 10.6k
/// requests/s; with the grace the same load did 20-24k (`bench/compare.sh`,
/// docs/PERFORMANCE.md). The pool reuses its newest parked connection first, so the
/// excess ones are the first reused; unused for the grace, they close and the pool is
/// back at its cap.
///
/// Parked connections are checked by one sweep every ``sweepInterval`` (a quarter of
/// the idle timeout, within 10-250 ms), not by a timer each: NIO finds a cancelled task
/// by a linear search of its timer heap — 2.5 % of the CPU with 10 000 client
/// connections (docs/PERFORMANCE.md). A deadline is therefore kept to within one
/// interval.
///
/// | `max_idle_per_upstream` | idle timeout | parked already | released connection |
/// |---|---|---|---|
/// | 512 | 60 s | 3 | parked until now + 60 s |
/// | 512 | 60 s | 512 | parked until now + 1 s (the grace) |
/// | 1 | 300 ms | 1 | parked until now + 300 ms (grace = idle timeout) |
/// | 0 | any | 0 | closed |
///
/// Pure: time comes in as ``MonotonicTime``; the pool feeds its loop's clock.
public struct IdleConnectionPolicy: Sendable, Equatable {
    /// Parked connections per upstream kept for the whole idle timeout; 0 = none is kept.
    public let maxIdlePerUpstream: Int
    public let idleTimeout: Duration
    /// How long a connection released above the cap may wait for reuse.
    public let excessGrace: Duration
    /// How often the parked connections are checked against their deadlines.
    public let sweepInterval: Duration

    /// `pool.max_requests_per_connection` (0 = no bound) and `pool.max_connection_age`
    /// (zero = no bound): a connection past either is closed when released, not reused.
    public let maxRequests: Int
    public let maxAge: Duration

    public static let maxGrace: Duration = .seconds(1)

    public init(maxIdlePerUpstream: Int, idleTimeout: Duration, maxRequests: Int = 0, maxAge: Duration = .zero) {
        self.maxIdlePerUpstream = maxIdlePerUpstream
        self.idleTimeout = idleTimeout
        self.maxRequests = maxRequests
        self.maxAge = maxAge
        self.excessGrace = min(Self.maxGrace, idleTimeout)
        self.sweepInterval = max(.milliseconds(10), min(.milliseconds(250), idleTimeout / 4))
    }

    public enum Release: Sendable, Equatable {
        /// Close it: the pool keeps none (`max_idle_per_upstream: 0`) or its slot was
        /// removed by a reload.
        case close
        /// Park it; the sweep closes it once `until` has passed.
        case park(until: MonotonicTime)
    }

    /// Whether a connection opened at `openedAt` that has served `served` requests may
    /// carry another — nil — or which bound ends its reuse: bounded reuse, so that a
    /// pooled connection to a name behind one virtual address (a Kubernetes Service, an
    /// L4 balancer) is opened again now and then and the replicas added behind it get
    /// their share — under steady load a pooled connection never idles out. The count is
    /// checked first: a connection past both counts once, as the pool's
    /// `fluxgate_upstream_connections_retired_total` does. The labels are the client
    /// side's (``ConnectionReuse/Reason``): the same two bounds, under `pool` here.
    public func retirement(served: Int, openedAt: MonotonicTime, now: MonotonicTime) -> ConnectionReuse.Reason? {
        if maxRequests != 0 && served >= maxRequests { return .maxRequests }
        if maxAge != .zero && now - openedAt >= maxAge { return .maxAge }
        return nil
    }

    /// A connection to an upstream with `parked` connections parked already was
    /// released at `now` (its exchange ended cleanly; no request was waiting for it).
    public func release(parked: Int, retired: Bool, now: MonotonicTime) -> Release {
        guard maxIdlePerUpstream > 0, !retired else { return .close }
        return .park(until: now + (parked >= maxIdlePerUpstream ? excessGrace : idleTimeout))
    }
}
