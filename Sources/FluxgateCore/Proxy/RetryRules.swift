/// What happens to a request after its upstream failed it before anything reached the
/// client: sent again on a fresh connection to the same upstream, offered to another
/// upstream (the caller then asks the balancer for one and ``RetryBudget`` for a place),
/// or answered as failed. docs/ARCHITECTURE.md, "Retries", says why each rule is so.
///
/// A request may go elsewhere only once, and only if it is idempotent (RFC 9110 §9.2.2)
/// and fully read, with no body or its whole body still held: a POST, or a body that
/// streamed on, is never sent twice. The resend after a stale keep-alive connection is
/// not a retry: the upstream closed an idle connection just as it was picked, so the
/// request never reached it (nginx and HAProxy resend alike, without a budget).
///
/// | failure                                   | GET, no body or held | POST   | GET, retried before |
/// |-------------------------------------------|----------------------|--------|---------------------|
/// | 502, 503, 504                             | another upstream     | fail   | fail                |
/// | 500, 501, other statuses                  | fail (relayed)       | fail   | fail                |
/// | no head within `upstream_header`          | another upstream, if `retry.on_timeout` | fail | fail  |
/// | closed before the head, reused connection | resend fresh (once)  | fail   | resend fresh (once) |
/// | closed before the head, fresh connection  | another upstream     | fail   | fail                |
/// | closed again after the fresh resend       | another upstream     | fail   | fail                |
public enum RetryRules {
    public enum Failure: Sendable, Equatable {
        /// The upstream's response head came with this status.
        case status(Int)
        /// No response head within `timeouts.upstream_header` on a connected attempt.
        case noHeadInTime
        /// The connection closed before the whole response head came; `reusedConnection`
        /// when it had served an earlier request (a keep-alive connection from the pool).
        case closedBeforeHead(reusedConnection: Bool)
    }

    /// What the request allows, as the exchange knows it.
    public struct Attempt: Sendable, Equatable {
        public var idempotent: Bool
        /// The whole request (head and body) was read from the client.
        public var requestComplete: Bool
        /// No body, or the whole body is still held to be sent again.
        public var bodyResendable: Bool
        /// It already went to another upstream once.
        public var retriedElsewhere: Bool
        /// It was already resent once after a stale keep-alive connection closed.
        public var resentOnFreshConnection: Bool

        public init(idempotent: Bool, requestComplete: Bool, bodyResendable: Bool, retriedElsewhere: Bool, resentOnFreshConnection: Bool) {
            self.idempotent = idempotent
            self.requestComplete = requestComplete
            self.bodyResendable = bodyResendable
            self.retriedElsewhere = retriedElsewhere
            self.resentOnFreshConnection = resentOnFreshConnection
        }
    }

    public enum Action: Sendable, Equatable {
        /// Send it again to the same upstream on a new connection.
        case resendOnFreshConnection
        /// Offer it to another upstream (a place in the retry budget is still needed).
        case anotherUpstream
        /// Answer the failure (502/504) or relay the status.
        case fail
    }

    /// - Parameters:
    ///   - attempt: read only when the failure could lead anywhere but `.fail` — every
    ///     final response head is asked about, and almost all are not 502-504.
    ///   - onTimeout: `retry.on_timeout`.
    public static func next(after failure: Failure, _ attempt: @autoclosure () -> Attempt, onTimeout: Bool) -> Action {
        switch failure {
        case .status(let status):
            return (502...504).contains(status) && mayGoElsewhere(attempt()) ? .anotherUpstream : .fail
        case .noHeadInTime:
            return onTimeout && mayGoElsewhere(attempt()) ? .anotherUpstream : .fail
        case .closedBeforeHead(let reused):
            let attempt = attempt()
            if reused && attempt.idempotent && attempt.bodyResendable && !attempt.resentOnFreshConnection {
                return .resendOnFreshConnection
            }
            return mayGoElsewhere(attempt) ? .anotherUpstream : .fail
        }
    }

    private static func mayGoElsewhere(_ attempt: Attempt) -> Bool {
        attempt.idempotent && attempt.requestComplete && attempt.bodyResendable && !attempt.retriedElsewhere
    }
}
