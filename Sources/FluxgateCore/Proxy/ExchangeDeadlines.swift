/// Every per-exchange timeout in one place: which phase of a request may stall, for
/// how long, and which deadline is next.
///
/// nginx's model, one timer per direction measured between successive operations,
/// not over the whole transfer (a large upload on a slow link is fine as long as it
/// keeps moving):
///
/// | timeout | runs while | nginx | answer |
/// |---|---|---|---|
/// | `client_body` | the request body is wanted and does not arrive | `client_body_timeout` | 408 before the response started, else close |
/// | `upstream_send` | the upstream does not take the request body | `proxy_send_timeout` | 504 before the response started, else close |
/// | `upstream_header` | the request was sent and no response head came | `proxy_read_timeout` (head) | 504 |
/// | `upstream_read` | the response body is wanted and does not arrive | `proxy_read_timeout` | close |
/// | `client_send` | the client does not take the response | `send_timeout` | close |
/// | `request` | head received → end, whatever moves (optional) | — | 408 while the request is not whole, 503 while queued, else 504, before the response started; else close |
///
/// A direction the gateway itself paused (backpressure: reads from the client stop
/// while the upstream is not writable) is measured by the other side's timeout,
/// and its own clock restarts when it resumes, so a stall is blamed on the party that
/// stalled. Pure: events and times in, deadlines out; the handler owns one timer.
public struct ExchangeDeadlines: Sendable, Equatable {
    /// The timeouts, kept in whole nanoseconds (``NanosecondsStored``): deadlines are
    /// computed from them several times per request, and a `Duration` of 9.2 s or more
    /// (the defaults are 30 s) needs a 128-bit division to become nanoseconds each time.
    public struct Limits: Sendable, Equatable {
        @NanosecondsStored public var clientBody: Duration
        @NanosecondsStored public var clientSend: Duration
        @NanosecondsStored public var upstreamHeader: Duration
        @NanosecondsStored public var upstreamRead: Duration
        @NanosecondsStored public var upstreamSend: Duration
        /// Zero: no total cap.
        @NanosecondsStored public var request: Duration

        public init(
            clientBody: Duration = .seconds(30), clientSend: Duration = .seconds(30), upstreamHeader: Duration = .seconds(30),
            upstreamRead: Duration = .seconds(30), upstreamSend: Duration = .seconds(30), request: Duration = .zero
        ) {
            self.clientBody = clientBody
            self.clientSend = clientSend
            self.upstreamHeader = upstreamHeader
            self.upstreamRead = upstreamRead
            self.upstreamSend = upstreamSend
            self.request = request
        }
    }

    /// Which timeout expired. Raw values name the phase in metrics and logs.
    public enum Expiry: String, Sendable, CaseIterable {
        case clientBody = "client_body"
        case clientSend = "client_send"
        case upstreamHeader = "upstream_header"
        case upstreamRead = "upstream_read"
        case upstreamSend = "upstream_send"
        case request = "request"

        public var index: Int { Self.allCases.firstIndex(of: self)! }
    }

    public let limits: Limits
    let started: MonotonicTime
    /// Last progress of the request body, while the gateway wants more of it.
    private var clientBodySince: MonotonicTime?
    /// The request was fully sent; its response head not seen yet.
    private var headSince: MonotonicTime?
    /// Last progress of the response body, while the gateway wants more of it.
    private var upstreamReadSince: MonotonicTime?
    /// Since when the client connection has not been writable.
    private var clientBlockedSince: MonotonicTime?
    /// Since when the upstream connection has not been writable (request body pending).
    private var upstreamBlockedSince: MonotonicTime?

    public init(limits: Limits, now: MonotonicTime) {
        self.limits = limits
        self.started = now
    }

    // MARK: Events

    /// The request body is wanted (head read, body not complete, reads not paused by
    /// the gateway): its clock starts now. Also called on every body read.
    public mutating func clientBodyProgress(now: MonotonicTime) { clientBodySince = now }

    /// The gateway paused reading the client (or the body is complete): the client is not waited for.
    public mutating func clientBodyNotWanted() { clientBodySince = nil }

    /// The whole request went to the upstream: the response head is due.
    public mutating func requestSent(now: MonotonicTime) {
        clientBodySince = nil
        upstreamBlockedSince = nil
        if headSince == nil && upstreamReadSince == nil { headSince = now }
    }

    /// A new attempt (failover, retry) starts: nothing is due from the old upstream.
    public mutating func attemptRestarted() {
        headSince = nil
        upstreamReadSince = nil
        upstreamBlockedSince = nil
    }

    /// The response head arrived (the body, if any, follows).
    public mutating func responseHeadReceived(now: MonotonicTime) {
        headSince = nil
        upstreamReadSince = now
    }

    /// Response body bytes arrived; also when upstream reads resume after a pause.
    public mutating func upstreamProgress(now: MonotonicTime) {
        if upstreamReadSince != nil { upstreamReadSince = now }
    }

    /// The response is complete: nothing more is due from the upstream.
    public mutating func responseComplete() {
        headSince = nil
        upstreamReadSince = nil
    }

    public mutating func clientWritable(_ writable: Bool, now: MonotonicTime) {
        if writable {
            clientBlockedSince = nil
            // Upstream reads were paused for the client: the upstream's clock restarts.
            upstreamProgress(now: now)
        } else if clientBlockedSince == nil {
            clientBlockedSince = now
        }
    }

    public mutating func upstreamWritable(_ writable: Bool, now: MonotonicTime) {
        if writable {
            upstreamBlockedSince = nil
        } else if upstreamBlockedSince == nil {
            upstreamBlockedSince = now
        }
    }

    // MARK: Decisions

    /// The earliest moment a timeout may expire, if any runs.
    public var nextDeadline: MonotonicTime? { earliest(by: nil)?.0 }

    /// The timeout that expired by `now`, if any (the earliest one when several did).
    public func expired(now: MonotonicTime) -> Expiry? { earliest(by: now)?.1 }

    /// The earliest running deadline (at or before `by`, when given). No allocation:
    /// this runs whenever the handler re-arms its timer.
    private func earliest(by limit: MonotonicTime?) -> (MonotonicTime, Expiry)? {
        var best: (MonotonicTime, Expiry)? = nil
        func consider(_ since: MonotonicTime?, _ timeoutNanos: Int64, _ expiry: Expiry) {
            guard let since else { return }
            let deadline = since.advanced(byNanoseconds: timeoutNanos)
            if let limit, deadline > limit { return }
            if best == nil || deadline < best!.0 { best = (deadline, expiry) }
        }
        // While the upstream does not take the body, the client is not blamed for
        // the paused reads; while the client holds the response back, the upstream
        // is not blamed for the paused reads on its side.
        if upstreamBlockedSince == nil { consider(clientBodySince, limits.$clientBody, .clientBody) }
        consider(upstreamBlockedSince, limits.$upstreamSend, .upstreamSend)
        consider(headSince, limits.$upstreamHeader, .upstreamHeader)
        if clientBlockedSince == nil { consider(upstreamReadSince, limits.$upstreamRead, .upstreamRead) }
        consider(clientBlockedSince, limits.$clientSend, .clientSend)
        if limits.$request > 0 { consider(started, limits.$request, .request) }
        return best
    }
}
