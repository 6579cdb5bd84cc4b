/// How long a client connection is kept alive for: after `limits.max_requests_per_connection`
/// requests, or once it is `timeouts.max_connection_age` old, the answer to the request
/// that reached the bound carries `Connection: close` and the connection closes after it
/// (a lingering close, as any last answer). nginx's `keepalive_requests` (default 1000)
/// and `keepalive_time` (default 1h) work the same way, checked as a request starts;
/// Envoy's `max_requests_per_connection` and `max_connection_duration` are the
/// counterparts (documented, not run here).
///
/// Why a proxy bounds it: a client (or a load balancer in front) that keeps its
/// connections forever stays on the gateway replica it first reached, so replicas
/// added by a scale-out get no share of it until the connections end; and a
/// connection's per-client state (its peer's connection count, a long-lived kernel
/// socket's buffers) is renewed now and then. A client sees an ordinary close after a
/// complete answer and opens a new connection for its next request, as HTTP/1.1 lets
/// any server do (RFC 9112 §9.6).
///
/// Pure: the caller passes the time and the limits in force (a reload may change
/// them; a connection counts from when it was accepted either way). A parked
/// connection carries this value through the parking lot, so parking neither resets
/// the count nor the age.
public struct ConnectionReuse: Sendable, Equatable {
    public struct Limits: Sendable, Equatable {
        /// Requests a connection carries at most; 0 = no bound.
        public var maxRequests: Int
        /// Age in nanoseconds after which the next request is the last; 0 = no bound.
        public var maxAgeNanoseconds: Int64

        public init(maxRequests: Int, maxAge: Duration) {
            self.maxRequests = maxRequests
            self.maxAgeNanoseconds = max(0, maxAge.nanosecondsClamped)
        }

        public static let unbounded = Limits(maxRequests: 0, maxAge: .zero)
    }

    /// Which bound made a request the connection's last.
    public enum Reason: Int, Sendable, CaseIterable {
        case maxRequests
        case maxAge

        /// The metric label: the config key's name.
        public var label: String {
            switch self {
            case .maxRequests: "max_requests_per_connection"
            case .maxAge: "max_connection_age"
            }
        }
    }

    /// When the connection was accepted.
    public let openedAt: MonotonicTime
    /// Requests started on it so far, saturating. 32 bits: with the 64-bit time the value
    /// is 12 bytes, and a parked connection's entry (``ParkingLot``'s table) puts its
    /// descriptor in the remaining 4 — 8 bytes more per parked connection, not 16.
    private var started: UInt32 = 0
    /// Requests started on it so far.
    public var requests: Int { Int(started) }

    public init(openedAt: MonotonicTime) {
        self.openedAt = openedAt
    }

    /// A request head arrived. Returns why this request must be the connection's last,
    /// or nil when the connection may carry more.
    public mutating func requestStarted(now: MonotonicTime, limits: Limits) -> Reason? {
        if started < .max { started += 1 }
        if limits.maxRequests > 0, requests >= limits.maxRequests { return .maxRequests }
        if limits.maxAgeNanoseconds > 0, now.nanoseconds &- openedAt.nanoseconds >= limits.maxAgeNanoseconds { return .maxAge }
        return nil
    }
}
