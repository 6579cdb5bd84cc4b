/// When to give up on a client connection: the idle keep-alive timeout between
/// requests, the request-head timeout that stops slowloris clients, and the send
/// timeout for a client that does not take what was written to it.
///
/// nginx's model: `client_header_timeout` runs from the first byte of a request
/// until its head is complete; `keepalive_timeout` runs while no request is in
/// progress. A new connection waits for its first byte under the header timeout
/// (nginx does the same), so a connect-and-say-nothing client is dropped as fast as a
/// slow one. While a request is being served neither timer runs; upstream timeouts
/// cover that time.
///
/// The send timeout (nginx's `send_timeout`) runs while the client does not take the
/// answers already written (the shell's write buffer past its high watermark). It
/// replaces the idle and head timeouts for as long as it runs: the gateway reads and
/// starts nothing more from a client that takes no answers, so the client is blamed
/// for what it stalled, and the idle or head clock starts afresh once it reads again
/// (nginx's keep-alive timer, too, starts only once the response is sent). While a
/// request is served it runs only when ``sendTimedWhileBusy`` (the admin listener);
/// the data port's exchanges time their own sends (``ExchangeDeadlines``).
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
        /// The client took none of the written answers for the send timeout: close
        /// (nothing more can be said to it).
        case closeStalled
        /// The head did not arrive in time: answer 408 and close.
        case rejectSlowHead
        /// Idle for `park_after`: park the connection (hand its socket to the loop's
        /// parking lot) until `idleDeadline`. A shell that cannot park it (TLS, a write
        /// still queued) keeps it; the timer then runs to `idleDeadline` as without parking.
        case park(idleDeadline: MonotonicTime)
    }

    public private(set) var phase: Phase
    /// The earliest moment a timeout may expire, if one runs.
    public var deadline: MonotonicTime? {
        if let sendDeadline, phase != .busy || sendTimedWhileBusy { return sendDeadline }
        return phaseDeadline
    }
    /// The head or idle (or park) deadline of the phase.
    private var phaseDeadline: MonotonicTime?
    /// Since when the client has not taken what was written (nil: it has).
    private var blockedSince: MonotonicTime?
    /// Kept in nanoseconds (``NanosecondsStored``): a deadline is computed from one of
    /// them twice per request, and a `Duration` of 9.2 s or more (the idle default is
    /// 60 s) needs a 128-bit division to become nanoseconds each time.
    @NanosecondsStored var headerTimeout: Duration
    @NanosecondsStored var idleTimeout: Duration
    /// `timeouts.park_after`; zero: never park.
    @NanosecondsStored var parkAfter: Duration
    /// Zero: a client that takes no answers is not timed here.
    @NanosecondsStored var sendTimeout: Duration
    /// Whether the send timeout runs while a request is served, too.
    public let sendTimedWhileBusy: Bool
    /// While idle with a park pending: when the idle timeout ends (``deadline`` is then
    /// the earlier park time).
    private var idleDeadline: MonotonicTime?

    /// The shorter of the two: the longest a connection's timer needs to sleep.
    public var shorterTimeout: Duration { min(headerTimeout, idleTimeout) }

    /// - Parameters:
    ///   - parkAfter: idle time after which the connection is offered for
    ///     parking (``Action/park(idleDeadline:)``); zero (the default): never.
    ///   - sendTimeout: how long the client may take none of the written answers
    ///     (``clientWritable(_:now:)``); zero (the default): not timed here.
    ///   - sendTimedWhileBusy: the send timeout runs while a request is served, too.
    public init(
        headerTimeout: Duration, idleTimeout: Duration, parkAfter: Duration = .zero, sendTimeout: Duration = .zero,
        sendTimedWhileBusy: Bool = false
    ) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.parkAfter = parkAfter
        self.sendTimeout = sendTimeout
        self.sendTimedWhileBusy = sendTimedWhileBusy
        self.phase = .closed
    }

    /// While the client is blocked: when the send timeout ends it.
    private var sendDeadline: MonotonicTime? {
        guard let blockedSince, $sendTimeout > 0 else { return nil }
        return blockedSince.advanced(byNanoseconds: $sendTimeout)
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

    /// The client took the written answers (`true`: the shell's write buffer fell below
    /// its low watermark) or stopped taking them (`false`: past its high watermark).
    public mutating func clientWritable(_ writable: Bool, now: MonotonicTime) -> Action {
        guard phase != .closed, $sendTimeout > 0 else { return .none }
        if !writable {
            guard blockedSince == nil else { return .none }
            blockedSince = now
            return deadline.map { .schedule(deadline: $0) } ?? .none
        }
        guard blockedSince.take() != nil else { return .none }
        // The phase's own clock starts afresh: the gateway read and started nothing
        // while the client was blocked.
        switch phase {
        case .idle: return startIdle(now: now)
        case .readingHead: return arm(now.advanced(byNanoseconds: $headerTimeout))
        case .busy, .closed: return .none
        }
    }

    /// The decoder produced a complete request head.
    public mutating func requestHeadReceived() -> Action {
        guard phase != .closed else { return .none }
        phase = .busy
        phaseDeadline = nil
        idleDeadline = nil
        if sendTimedWhileBusy, let sendDeadline { return .schedule(deadline: sendDeadline) }
        return .cancelTimer
    }

    /// The response to the current request was fully written and the connection stays open.
    public mutating func responseCompleted(now: MonotonicTime) -> Action {
        guard phase == .busy else { return .none }
        phase = .idle
        return startIdle(now: now)
    }

    private mutating func startIdle(now: MonotonicTime) -> Action {
        let idleEnds = now.advanced(byNanoseconds: $idleTimeout)
        guard $parkAfter > 0, $parkAfter < $idleTimeout else { return arm(idleEnds) }
        idleDeadline = idleEnds
        return arm(now.advanced(byNanoseconds: $parkAfter))
    }

    /// A graceful drain began: a connection idle between requests closes `grace` from
    /// now (sooner if its idle time ends first) and is not offered for parking — so a
    /// client whose next request is already on its way is served, with `Connection:
    /// close`, rather than reset by a close that crosses it (HAProxy before 2.4 waited
    /// for such a last request too; nginx closes at once). Other phases: nothing changes.
    ///
    /// | idle since | idle timeout | grace | drain at | closes at |
    /// |---|---|---|---|---|
    /// | 0 s | 60 s | 1 s | 10 s | 11 s |
    /// | 0 s | 60 s | 1 s | 59.5 s | 60 s |
    /// | 0 s (park at 5 s) | 60 s | 1 s | 2 s | 3 s, not parked |
    public mutating func drainStarted(now: MonotonicTime, grace: Duration) -> Action {
        guard phase == .idle else { return .none }
        let closes = now + grace
        let idleEnds = idleDeadline.take() ?? phaseDeadline ?? closes
        return arm(min(idleEnds, closes))
    }

    public mutating func timerFired(now: MonotonicTime) -> Action {
        if let sendDeadline, phase != .closed, phase != .busy || sendTimedWhileBusy {
            guard now >= sendDeadline else { return .none }
            _ = connectionClosed()
            return .closeStalled
        }
        guard let deadline = phaseDeadline, now >= deadline else { return .none }
        phaseDeadline = nil
        switch phase {
        case .idle:
            if let idleEnds = idleDeadline.take() {
                // Offered once: a connection the shell keeps waits out its idle timeout.
                phaseDeadline = idleEnds
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
        phaseDeadline = nil
        idleDeadline = nil
        blockedSince = nil
        return .cancelTimer
    }

    /// The phase's deadline is `deadline`; the timer is due at the earliest running one.
    private mutating func arm(_ deadline: MonotonicTime) -> Action {
        phaseDeadline = deadline
        return .schedule(deadline: self.deadline ?? deadline)
    }
}
