/// What one event loop saw of the exchanges it ended: plain counters and fixed-bucket
/// histograms, written by that loop alone (no lock, no atomic, no allocation per
/// request once an upstream index has been seen) and merged for export.
///
/// Every exchange is recorded once, from its single end (``ExchangeLifecycle``
/// yields its ``ExchangeLifecycle/Outcome`` once). The metrics endpoint collects each
/// loop's copy on that loop, merges them with ``add(_:)`` and exports the sums; `/stats`
/// does the same. Pure: the caller passes everything, including the route class.
public struct TrafficStats: Sendable, Equatable {
    /// Status classes for `fluxgate_requests_total{status}`: no response (`none`), then 1xx…5xx.
    public static let statusClasses = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"]
    /// How exchanges end (``ExchangeLifecycle/End``), in this order.
    public static let ends = ["proxied", "shed", "gateway_answer", "cut_off", "client_gone"]

    /// Requests by route class × status class × upstream (index 0 = none, i + 1 = upstream i).
    public private(set) var requests: [Int]
    /// Upstream slots `requests` and the per-upstream arrays hold (grows when a reload adds one).
    public private(set) var upstreamSlots: Int
    public private(set) var endCounts = [Int](repeating: 0, count: ends.count)
    /// Real sheds by ``ShedReason`` (in `allCases` order).
    public private(set) var shed = [Int](repeating: 0, count: ShedReason.allCases.count)
    /// Attempts after the first, by ``RetryCause`` (in `allCases` order), counted as
    /// each starts.
    public private(set) var retriesByCause = [Int](repeating: 0, count: RetryCause.allCases.count)
    /// Attempts after the first, over all exchanges.
    public var retries: Int { retriesByCause.reduce(0, &+) }
    /// Retries wanted (a retryable failure of an idempotent request) but refused by the budget.
    public private(set) var retryBudgetExhausted = 0
    /// Exchanges started on / finished with each upstream: their difference is its in-flight.
    public private(set) var upstreamStarted: [Int]
    public private(set) var upstreamFinished: [Int]
    /// Input answered before a request head was complete (no exchange): by
    /// ``HeadRefusal``, in `allCases` order.
    public private(set) var headRefusals = [Int](repeating: 0, count: HeadRefusal.allCases.count)
    /// Exchanges ended by a timeout, by ``ExchangeDeadlines/Expiry`` (in `allCases` order).
    public private(set) var timeouts = [Int](repeating: 0, count: ExchangeDeadlines.Expiry.allCases.count)
    /// Client connections closed at accept by `limits.max_connections` (index 0) and
    /// `limits.max_connections_per_client` (index 1).
    public private(set) var connectionsRefused = [0, 0]
    /// Idle (parked, or TLS listed) client connections closed to make room for a new one at `limits.max_connections`.
    public private(set) var connectionsEvicted = 0
    /// Client connections whose answer carried `Connection: close` because they reached
    /// `limits.max_requests_per_connection` or `timeouts.max_connection_age`, by
    /// ``ConnectionReuse/Reason`` (in `allCases` order).
    public private(set) var connectionsRecycled = [Int](repeating: 0, count: ConnectionReuse.Reason.allCases.count)
    /// Client connections closed because they held memory longest while the loop's share
    /// of `limits.stalled_client_bytes` was taken (``StalledClientBudget``).
    public private(set) var stalledClientsClosed = 0
    /// Request bodies read whole into a spool file before admission, and those the spool
    /// budget could not take (they streamed after admission).
    public private(set) var bodiesSpooled = 0
    public private(set) var spoolBudgetRefusals = 0
    /// Head received → end, every exchange.
    public private(set) var duration = LatencyHistogram()
    /// Time in the admission queue, every admitted exchange (0 for those never queued).
    public private(set) var queueWait = LatencyHistogram()

    public init(upstreams: Int = 0) {
        upstreamSlots = upstreams
        requests = [Int](repeating: 0, count: Priority.allCases.count * Self.statusClasses.count * (upstreams + 1))
        upstreamStarted = [Int](repeating: 0, count: upstreams)
        upstreamFinished = [Int](repeating: 0, count: upstreams)
    }

    /// The ``requests`` index for a route class, status class and upstream.
    public func index(route: Priority, statusClass: Int, upstream: Int?) -> Int {
        let routeIndex = route.rank
        return (routeIndex * Self.statusClasses.count + statusClass) * (upstreamSlots + 1) + (upstream.map { $0 + 1 } ?? 0)
    }

    public func requests(route: Priority, statusClass: Int, upstream: Int?) -> Int {
        guard upstream ?? 0 < upstreamSlots || upstream == nil else { return 0 }
        return requests[index(route: route, statusClass: statusClass, upstream: upstream)]
    }

    /// 0 for no response, 1…5 for 1xx…5xx.
    public static func statusClass(_ end: ExchangeLifecycle.End) -> Int {
        switch end {
        case .proxied(let status), .gatewayAnswer(let status): return min(5, max(1, status / 100))
        case .shed(let reason): return reason.status / 100
        case .cutOff, .clientGone: return 0
        }
    }

    public static func endIndex(_ end: ExchangeLifecycle.End) -> Int {
        switch end {
        case .proxied: 0
        case .shed: 1
        case .gatewayAnswer: 2
        case .cutOff: 3
        case .clientGone: 4
        }
    }

    /// Counts one ended exchange.
    public mutating func record(_ outcome: ExchangeLifecycle.Outcome, route: Priority) {
        if let upstream = outcome.upstream, upstream >= upstreamSlots { grow(to: upstream + 1) }
        requests[index(route: route, statusClass: Self.statusClass(outcome.end), upstream: outcome.upstream)] &+= 1
        endCounts[Self.endIndex(outcome.end)] &+= 1
        if case .shed(let reason) = outcome.end { shed[reason.index] &+= 1 }
        duration.record(outcome.total)
        if outcome.upstreamTime != nil { queueWait.record(outcome.queueWait) }
    }

    /// An exchange's attempt moved to `upstream` (first attempt, failover or retry);
    /// `from` is the upstream it was counted on before, if any.
    public mutating func moved(from: Int?, to upstream: Int?) {
        if let from { upstreamFinished[from] &+= 1 }
        if let upstream {
            if upstream >= upstreamSlots { grow(to: upstream + 1) }
            upstreamStarted[upstream] &+= 1
        }
    }

    public mutating func retryRefusedByBudget() { retryBudgetExhausted &+= 1 }

    /// An exchange's next attempt starts, after `cause`.
    public mutating func retried(_ cause: RetryCause) { retriesByCause[cause.rawValue] &+= 1 }

    /// Input refused before it made a request head (a 400, 431 or 408 and a close).
    public mutating func refused(_ refusal: HeadRefusal) { headRefusals[refusal.rawValue] &+= 1 }

    /// An exchange ended because `expiry` ran out.
    public mutating func timedOut(_ expiry: ExchangeDeadlines.Expiry) { timeouts[expiry.index] &+= 1 }

    /// A connection was refused at accept (`perClient`: by the per-address cap).
    public mutating func connectionRefused(perClient: Bool) { connectionsRefused[perClient ? 1 : 0] &+= 1 }
    public mutating func connectionEvicted() { connectionsEvicted &+= 1 }
    public mutating func connectionRecycled(_ reason: ConnectionReuse.Reason) { connectionsRecycled[reason.rawValue] &+= 1 }
    public mutating func stalledClientClosed() { stalledClientsClosed &+= 1 }
    /// A request body went to a spool file (`spooled`), or the budget refused it.
    public mutating func bodySpool(spooled: Bool) {
        if spooled { bodiesSpooled &+= 1 } else { spoolBudgetRefusals &+= 1 }
    }

    /// Exchanges in flight on `upstream` as this copy counts them.
    public func inFlight(_ upstream: Int) -> Int {
        upstream < upstreamSlots ? upstreamStarted[upstream] - upstreamFinished[upstream] : 0
    }

    public var total: Int { endCounts.reduce(0, +) }

    public func shedCount(_ reason: ShedReason) -> Int { shed[reason.index] }

    /// Adds another loop's counts to these.
    public mutating func add(_ other: TrafficStats) {
        if other.upstreamSlots > upstreamSlots { grow(to: other.upstreamSlots) }
        for route in Priority.allCases {
            for status in Self.statusClasses.indices {
                for upstream in [nil] + Array(0..<other.upstreamSlots) {
                    requests[index(route: route, statusClass: status, upstream: upstream)] &+=
                        other.requests[other.index(route: route, statusClass: status, upstream: upstream)]
                }
            }
        }
        for i in endCounts.indices { endCounts[i] &+= other.endCounts[i] }
        for i in shed.indices { shed[i] &+= other.shed[i] }
        for i in retriesByCause.indices { retriesByCause[i] &+= other.retriesByCause[i] }
        retryBudgetExhausted &+= other.retryBudgetExhausted
        for i in headRefusals.indices { headRefusals[i] &+= other.headRefusals[i] }
        for i in timeouts.indices { timeouts[i] &+= other.timeouts[i] }
        for i in connectionsRefused.indices { connectionsRefused[i] &+= other.connectionsRefused[i] }
        connectionsEvicted &+= other.connectionsEvicted
        for i in connectionsRecycled.indices { connectionsRecycled[i] &+= other.connectionsRecycled[i] }
        stalledClientsClosed &+= other.stalledClientsClosed
        bodiesSpooled &+= other.bodiesSpooled
        spoolBudgetRefusals &+= other.spoolBudgetRefusals
        for i in 0..<other.upstreamSlots {
            upstreamStarted[i] &+= other.upstreamStarted[i]
            upstreamFinished[i] &+= other.upstreamFinished[i]
        }
        duration.add(other.duration)
        queueWait.add(other.queueWait)
    }

    /// Makes room for upstream indices below `count` (a reload added upstreams); the
    /// counts so far keep their places.
    private mutating func grow(to count: Int) {
        var grown = TrafficStats(upstreams: count)
        for route in Priority.allCases {
            for status in Self.statusClasses.indices {
                for upstream in [nil] + Array(0..<upstreamSlots) {
                    grown.requests[grown.index(route: route, statusClass: status, upstream: upstream)] =
                        requests[index(route: route, statusClass: status, upstream: upstream)]
                }
            }
        }
        for i in 0..<upstreamSlots {
            grown.upstreamStarted[i] = upstreamStarted[i]
            grown.upstreamFinished[i] = upstreamFinished[i]
        }
        requests = grown.requests
        upstreamStarted = grown.upstreamStarted
        upstreamFinished = grown.upstreamFinished
        upstreamSlots = count
    }
}

/// Why input was answered before it made a complete request head.
public enum HeadRefusal: Int, Sendable, CaseIterable {
    /// Not parseable as HTTP/1.1 (400).
    case badRequest
    /// Head larger than `limits.max_header_bytes`, or with more fields than
    /// `limits.max_header_count` (431).
    case headersTooLarge
    /// Head not complete within `timeouts.client_header` (408).
    case headerTimeout
    /// Request line alone larger than `limits.max_header_bytes` (414). Last, so the
    /// positions of the others stay.
    case uriTooLong
    /// A later major HTTP version (`HTTP/2.0`) on this HTTP/1.1 port (505). Appended
    /// for the same reason.
    case versionNotSupported
    /// A method token the gateway does not forward (`BREW`) (501). Appended too.
    case methodNotImplemented

    public var status: Int {
        switch self {
        case .badRequest: 400
        case .headersTooLarge: 431
        case .headerTimeout: 408
        case .uriTooLong: 414
        case .versionNotSupported: 505
        case .methodNotImplemented: 501
        }
    }
}

/// Why an exchange made another attempt (`fluxgate_retries_total{cause}`).
public enum RetryCause: Int, Sendable, CaseIterable {
    /// The connect failed (refused, timed out, or waited past the connect queue): the
    /// next upstream, taking nothing from the retry budget.
    case connectFailed
    /// A pooled keep-alive connection closed before the response head: the request
    /// resent once on a fresh connection to the same upstream.
    case staleConnection
    /// The upstream answered 502, 503 or 504 (`retry.on_status`).
    case status
    /// A fresh connection closed before the response head.
    case closedBeforeHead
    /// No response head within `timeouts.upstream_header` (`retry.on_timeout`).
    case timeout

    /// The metric label.
    public var label: String {
        switch self {
        case .connectFailed: "connect_failed"
        case .staleConnection: "stale_connection"
        case .status: "status"
        case .closedBeforeHead: "closed_before_head"
        case .timeout: "upstream_header_timeout"
        }
    }
}

extension ShedReason {
    /// Position in `allCases`, for per-reason arrays.
    public var index: Int {
        switch self {
        case .clientRateLimited: 0
        case .rateLimited: 1
        case .overloaded: 2
        case .queueTimeout: 3
        case .noHealthyUpstream: 4
        }
    }
}

/// A Prometheus-style histogram with fixed bounds from 100 µs to 30 s: counts per
/// bucket (not cumulative), their sum and count. Recording is a few integer
/// comparisons — no allocation, no lock; the owner is one event loop.
///
/// Hand-written rather than swift-prometheus's `Histogram`, which takes a lock on
/// every observation and cannot merge per-loop copies.
public struct LatencyHistogram: Sendable, Equatable {
    /// Upper bounds in seconds; they resolve 1 ms … 10 s (the range) and the
    /// sub-millisecond times a proxied request takes on a fast upstream.
    public static let bounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    ]

    /// Per bucket, then one for values above the last bound (+Inf).
    public private(set) var counts = [Int](repeating: 0, count: bounds.count + 1)
    public private(set) var sumNanos: Int64 = 0
    public private(set) var count = 0

    public init() {}

    public mutating func record(_ value: Duration) {
        let nanos = max(0, value.nanosecondsClamped)
        counts[Self.bucket(nanos)] &+= 1
        sumNanos &+= nanos
        count &+= 1
    }

    /// The bucket of `nanos`: literal bounds (``bounds`` in nanoseconds), searched in
    /// halves — no array read on the data path.
    @inline(__always)
    static func bucket(_ nanos: Int64) -> Int {
        if nanos <= 10_000_000 {  // ≤ 10 ms: buckets 0…6
            if nanos <= 1_000_000 {
                if nanos <= 250_000 { return nanos <= 100_000 ? 0 : 1 }
                return nanos <= 500_000 ? 2 : 3
            }
            if nanos <= 2_500_000 { return 4 }
            return nanos <= 5_000_000 ? 5 : 6
        }
        if nanos <= 500_000_000 {  // buckets 7…11
            if nanos <= 50_000_000 { return nanos <= 25_000_000 ? 7 : 8 }
            if nanos <= 100_000_000 { return 9 }
            return nanos <= 250_000_000 ? 10 : 11
        }
        if nanos <= 2_500_000_000 { return nanos <= 1_000_000_000 ? 12 : 13 }
        if nanos <= 10_000_000_000 { return nanos <= 5_000_000_000 ? 14 : 15 }
        return nanos <= 30_000_000_000 ? 16 : 17
    }

    public mutating func add(_ other: LatencyHistogram) {
        for i in counts.indices { counts[i] &+= other.counts[i] }
        sumNanos &+= other.sumNanos
        count &+= other.count
    }

    /// Cumulative counts for each bound, then +Inf (the exposition's `_bucket` lines).
    public var cumulative: [Int] {
        var running = 0
        return counts.map { running += $0; return running }
    }
}
