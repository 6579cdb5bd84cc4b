/// The life of one proxied request, from its complete head to its end, and the one
/// place where it ends.
///
/// ```
/// admitting ──▶ queued ──▶ connecting ──▶ forwarding ──▶ relaying ──▶ finished(outcome)
///     │            │          ▲   │            │   ▲          │
///     │            │          └───┘ failover   │   └ retry ───┘ (before the head went out)
///     └────────────┴──────────────┴────────────┴──────────────▶ finished (shed, gateway answer, client gone)
/// ```
///
/// The handler reports what happened; ``finish(_:now:)`` returns the ``Outcome``
/// exactly once — a second call (a client that leaves while a gateway answer is being
/// written) returns nil — so the admission slot, the retry budget, and the access log
/// and metrics that hang off the outcome are each settled once per request.
///
/// Pure: times are parameters.
public struct ExchangeLifecycle: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        /// Head received; admission deciding.
        case admitting
        /// Waiting in the admission queue.
        case queued
        /// Getting a connection to `upstream` (idle one, new one, or waiting at the cap).
        case connecting(upstream: Int)
        /// Request going to `upstream`; its response head not seen yet.
        case forwarding(upstream: Int)
        /// The response head went to the client: from here, failure can only cut it off.
        case relaying(upstream: Int)
        case finished
    }

    /// How an exchange ended.
    public enum End: Sendable, Equatable {
        /// The upstream's response was relayed in full.
        case proxied(status: Int)
        /// Refused by admission (429/503 from Fluxgate itself).
        case shed(ShedReason)
        /// Fluxgate answered instead of an upstream: 413, 502, 503, 504.
        case gatewayAnswer(status: Int)
        /// The response had started and could not be completed; the connection closed.
        case cutOff
        /// The client went away first.
        case clientGone
    }

    public struct Outcome: Sendable, Equatable {
        public var end: End
        /// The upstream of the last attempt, if any.
        public var upstream: Int?
        /// Attempts after the first (failover after a refused connect, a stale
        /// keep-alive connection re-sent, a retry on 502/503/504, a close before the head or a response-head timeout).
        public var retries: Int
        /// Time in the admission queue.
        public var queueWait: Duration
        /// Admission to the end, when admitted.
        public var upstreamTime: Duration?
        /// Head received to the end.
        public var total: Duration

        public init(end: End, upstream: Int?, retries: Int, queueWait: Duration, upstreamTime: Duration?, total: Duration) {
            self.end = end
            self.upstream = upstream
            self.retries = retries
            self.queueWait = queueWait
            self.upstreamTime = upstreamTime
            self.total = total
        }
    }

    public private(set) var phase = Phase.admitting
    public private(set) var retries = 0
    private let started: MonotonicTime
    private var queuedAt: MonotonicTime?
    private var admittedAt: MonotonicTime?
    private var queueWait: Duration = .zero
    private var lastUpstream: Int?

    public init(now: MonotonicTime) {
        self.started = now
    }

    public var isFinished: Bool { phase == .finished }
    /// The response head reached the client: no retry, no gateway answer any more.
    public var responseStarted: Bool {
        if case .relaying = phase { return true }
        return false
    }

    public mutating func queued(now: MonotonicTime) {
        guard phase == .admitting else { return }
        phase = .queued
        queuedAt = now
    }

    public mutating func admitted(now: MonotonicTime) {
        guard phase == .admitting || phase == .queued else { return }
        if let queuedAt { queueWait = now - queuedAt }
        admittedAt = now
    }

    /// An attempt on `upstream` begins. Every attempt after the first counts as a retry.
    public mutating func connecting(upstream: Int) {
        guard !isFinished, !responseStarted else { return }
        if lastUpstream != nil { retries += 1 }
        lastUpstream = upstream
        phase = .connecting(upstream: upstream)
    }

    public mutating func forwarding() {
        guard case .connecting(let upstream) = phase else { return }
        phase = .forwarding(upstream: upstream)
    }

    public mutating func responseHeadSent() {
        guard case .forwarding(let upstream) = phase else { return }
        phase = .relaying(upstream: upstream)
    }

    /// Ends the exchange; the outcome comes out once, later calls return nil.
    public mutating func finish(_ end: End, now: MonotonicTime) -> Outcome? {
        guard !isFinished else { return nil }
        if phase == .queued, let queuedAt { queueWait = now - queuedAt }
        phase = .finished
        return Outcome(
            end: end, upstream: lastUpstream, retries: retries, queueWait: queueWait,
            upstreamTime: admittedAt.map { now - $0 }, total: now - started)
    }
}
