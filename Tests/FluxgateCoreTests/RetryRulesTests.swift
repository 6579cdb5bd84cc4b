import Testing

@testable import FluxgateCore

/// ``RetryRules``: the table in its comment, row by row, and every fact of the attempt
/// that closes the way elsewhere.
struct RetryRulesTests {
    static let get = RetryRules.Attempt(
        idempotent: true, requestComplete: true, bodyResendable: true, retriedElsewhere: false, resentOnFreshConnection: false)

    func next(_ failure: RetryRules.Failure, _ attempt: RetryRules.Attempt = get, onTimeout: Bool = true) -> RetryRules.Action {
        RetryRules.next(after: failure, attempt, onTimeout: onTimeout)
    }

    @Test func theTableRowByRow() {
        var post = Self.get
        post.idempotent = false
        var retried = Self.get
        retried.retriedElsewhere = true
        for status in 502...504 {
            #expect(next(.status(status)) == .anotherUpstream)
            #expect(next(.status(status), post) == .fail)
            #expect(next(.status(status), retried) == .fail)
        }
        for status in [200, 404, 429, 500, 501, 505] { #expect(next(.status(status)) == .fail) }
        #expect(next(.noHeadInTime) == .anotherUpstream)
        #expect(next(.noHeadInTime, onTimeout: false) == .fail)
        #expect(next(.noHeadInTime, post) == .fail)
        #expect(next(.noHeadInTime, retried) == .fail)
        #expect(next(.closedBeforeHead(reusedConnection: true)) == .resendOnFreshConnection)
        #expect(next(.closedBeforeHead(reusedConnection: true), post) == .fail)
        #expect(next(.closedBeforeHead(reusedConnection: true), retried) == .resendOnFreshConnection)
        #expect(next(.closedBeforeHead(reusedConnection: false)) == .anotherUpstream)
        #expect(next(.closedBeforeHead(reusedConnection: false), post) == .fail)
        #expect(next(.closedBeforeHead(reusedConnection: false), retried) == .fail)
        var resent = Self.get
        resent.resentOnFreshConnection = true
        #expect(next(.closedBeforeHead(reusedConnection: true), resent) == .anotherUpstream)  // closed again after the resend
    }

    /// Every final response head is asked about: for a status that cannot lead elsewhere
    /// the attempt's facts are not even read (the request's hot path).
    @Test func aStatusThatCannotBeRetriedReadsNothingOfTheAttempt() {
        var reads = 0
        func attempt() -> RetryRules.Attempt {
            reads += 1
            return Self.get
        }
        for status in [200, 204, 304, 404, 500] { #expect(RetryRules.next(after: .status(status), attempt(), onTimeout: true) == .fail) }
        #expect(RetryRules.next(after: .noHeadInTime, attempt(), onTimeout: false) == .fail)
        #expect(reads == 0)
        #expect(RetryRules.next(after: .status(503), attempt(), onTimeout: true) == .anotherUpstream)
        #expect(reads == 1)
    }

    /// A body that streamed on, or a request still being read, never goes elsewhere, and
    /// a body not held is not resent on a fresh connection either.
    @Test func aBodyNotHeldOrARequestNotReadKeepsItWhereItIs() {
        var streamed = Self.get
        streamed.bodyResendable = false
        var unread = Self.get
        unread.requestComplete = false
        for failure in [RetryRules.Failure.status(502), .noHeadInTime, .closedBeforeHead(reusedConnection: false)] {
            #expect(next(failure, streamed) == .fail)
            #expect(next(failure, unread) == .fail)
        }
        #expect(next(.closedBeforeHead(reusedConnection: true), streamed) == .fail)
        #expect(next(.closedBeforeHead(reusedConnection: true), unread) == .resendOnFreshConnection)  // its held part goes again
    }
}
