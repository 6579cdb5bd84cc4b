/// A listener's connection cap that makes room by closing the connection idle longest
/// between requests: the admin listener's 64 connections. At the cap a new connection
/// closes the open one that has waited longest for a request (a keep-alive connection
/// between requests, one that has not finished sending its first, or one whose answers
/// wait for the client to read them); only when the gateway is working on an answer for
/// every open connection is the new one refused. nginx does
/// the same when it runs out of connections (it closes idle keep-alive connections to
/// accept new ones, `ngx_drain_connections` — its source, read; not run beside Fluxgate).
///
/// Until 2026-12-07 the cap refused the 65th connection whatever the 64 were doing: a
/// client holding 64 idle keep-alive connections (renewed every 60 s, the idle timeout)
/// kept `/healthz` and `/readyz` from every probe — a connection reset, by hand — and on
/// Kubernetes, where the admin listener is on the pod network, a failing liveness probe
/// restarts the pod.
///
/// Pure bookkeeping; the admin server closes the connection named and calls back.
public struct IdleEvictingConnectionCap<ID: Hashable & Sendable>: Sendable {
    public enum Admission: Equatable, Sendable {
        case admitted
        /// Admitted in place of `ID`, which the caller closes (it is no longer counted).
        case admittedClosing(ID)
        /// Every open connection has a request in hand.
        case refused
    }

    public let capacity: Int
    /// Open connections waiting for a request, and since when.
    private var idle: [ID: MonotonicTime] = [:]
    /// Open connections whose answer the gateway is working on.
    private var busy: Set<ID> = []

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Connections counted against the cap.
    public var count: Int { idle.count + busy.count }

    /// A connection accepted at `now`: it waits for its first request from then.
    public mutating func open(_ id: ID, now: MonotonicTime) -> Admission {
        guard count >= capacity else {
            idle[id] = now
            return .admitted
        }
        // At most `capacity` entries (64): a linear search is cheaper than keeping an order.
        guard let longest = idle.min(by: { $0.value < $1.value })?.key else {
            return .refused
        }
        idle[longest] = nil
        idle[id] = now
        return .admittedClosing(longest)
    }

    /// The gateway works on an answer for `id`: it is not closed to make room until the
    /// answer is written.
    public mutating func answering(_ id: ID) {
        if idle.removeValue(forKey: id) != nil { busy.insert(id) }
    }

    /// `id`'s answer is written (whether or not the client reads it) and it waits for the
    /// next request from `now`.
    public mutating func answered(_ id: ID, now: MonotonicTime) {
        if busy.remove(id) != nil { idle[id] = now }
    }

    /// `id` closed (or was closed to make room: then this does nothing).
    public mutating func closed(_ id: ID) {
        idle[id] = nil
        busy.remove(id)
    }
}
