/// When to give up on a client connection: the idle keep-alive timeout between
/// requests and the request-head timeout that stops slowloris clients.
///
/// nginx's model: `client_header_timeout` runs from the first byte of a request
/// until its head is complete; `keepalive_timeout` runs while no request is in
/// progress. A new connection waits for its first byte under the header timeout
/// (nginx does the same), so a connect-and-say-nothing client is dropped as fast as a
/// slow one. While a request is being served neither timer runs; upstream timeouts
/// cover that time.
///
/// Events in, actions out; the I/O shell owns the one timer.
public struct ClientConnectionTimeouts: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        /// Between requests on a kept-alive connection.
        case idle
        /// Some bytes of a request head have arrived (or the connection is new).
        case readingHead
        /// A request head is complete and its exchange is under way.
        case busy
        case closed
    }

    public enum Action: Sendable, Equatable {
        case none
        /// (Re)arm the single timer for `deadline`, replacing any earlier one.
        case schedule(deadline: MonotonicTime)
        case cancelTimer
        /// Idle keep-alive expired: close quietly.
        case closeIdle
        /// The head did not arrive in time: answer 408 and close.
        case rejectSlowHead
        /// Idle for `park_after`: park the connection (hand its socket to the loop's
        /// parking lot) until `idleDeadline`. A shell that cannot park it (TLS, a write
        /// still queued) keeps it; the timer then runs to `idleDeadline` as without parking.
        case park(idleDeadline: MonotonicTime)
    }

    public private(set) var phase: Phase
    public private(set) var deadline: MonotonicTime?
    /// Kept in nanoseconds (``NanosecondsStored``): a deadline is computed from one of
    /// them twice per request, and a `Duration` of 9.2 s or more (the idle default is
    /// 60 s) needs a 128-bit division to become nanoseconds each time.
    @NanosecondsStored var headerTimeout: Duration
    @NanosecondsStored var idleTimeout: Duration
    /// `timeouts.park_after`; zero: never park.
    @NanosecondsStored var parkAfter: Duration
    /// While idle with a park pending: when the idle timeout ends (``deadline`` is then
    /// the earlier park time).
    private var idleDeadline: MonotonicTime?

    /// The shorter of the two: the longest a connection's timer needs to sleep.
    public var shorterTimeout: Duration { min(headerTimeout, idleTimeout) }

    /// - Parameter parkAfter: idle time after which the connection is offered for
    ///   parking (``Action/park(idleDeadline:)``); zero (the default): never.
    public init(headerTimeout: Duration, idleTimeout: Duration, parkAfter: Duration = .zero) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.parkAfter = parkAfter
        self.phase = .closed
    }

    public mutating func connectionOpened(now: MonotonicTime) -> Action {
        phase = .readingHead
        return arm(now.advanced(byNanoseconds: $headerTimeout))
    }

    /// Raw bytes arrived from the client.
    public mutating func bytesReceived(now: MonotonicTime) -> Action {
        guard phase == .idle else { return .none }
        phase = .readingHead
        idleDeadline = nil
        return arm(now.advanced(byNanoseconds: $headerTimeout))
    }

    /// The decoder produced a complete request head.
    public mutating func requestHeadReceived() -> Action {
        guard phase != .closed else { return .none }
        phase = .busy
        deadline = nil
        idleDeadline = nil
        return .cancelTimer
    }

    /// The response to the current request was fully written and the connection stays open.
    public mutating func responseCompleted(now: MonotonicTime) -> Action {
        guard phase == .busy else { return .none }
        phase = .idle
        let idleEnds = now.advanced(byNanoseconds: $idleTimeout)
        guard $parkAfter > 0, $parkAfter < $idleTimeout else { return arm(idleEnds) }
        idleDeadline = idleEnds
        return arm(now.advanced(byNanoseconds: $parkAfter))
    }

    public mutating func timerFired(now: MonotonicTime) -> Action {
        guard let deadline, now >= deadline else { return .none }
        self.deadline = nil
        switch phase {
        case .idle:
            if let idleEnds = idleDeadline.take() {
                // Offered once: a connection the shell keeps waits out its idle timeout.
                self.deadline = idleEnds
                return .park(idleDeadline: idleEnds)
            }
            phase = .closed
            return .closeIdle
        case .readingHead:
            phase = .closed
            return .rejectSlowHead
        case .busy, .closed:
            return .none
        }
    }

    public mutating func connectionClosed() -> Action {
        phase = .closed
        deadline = nil
        idleDeadline = nil
        return .cancelTimer
    }

    private mutating func arm(_ deadline: MonotonicTime) -> Action {
        self.deadline = deadline
        return .schedule(deadline: deadline)
    }
}
