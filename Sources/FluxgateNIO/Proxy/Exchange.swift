import FluxgateCore
import NIOCore

/// One client request on its way through the gateway: what goes upstream, where it
/// is going, and how far each direction has got.
final class Exchange {
    let method: RequestMethod
    /// The request-target as sent (routes, access log, refusals), held in the exchange
    /// up to 64 bytes (``InlineText``): as a `String` it was a heap allocation per
    /// request beyond 15.
    let target: Target
    typealias Target = InlineText
    /// The head as it goes upstream, serialized while the client's bytes were at hand
    /// (``RequestSerializer``); without `Host` when the client sent none. Nil until then,
    /// and again once the exchange ended: an empty `ByteBuffer()` in its place shares one
    /// storage object among all of them, whose count every loop's requests took and gave
    /// back twice each — atomics on one cache line from every core.
    var upstreamHead: ByteBuffer?
    /// The rate-limit key of this request's client (``RateLimitKey``), or ``ClientKey/none``
    /// when per-client limits are off.
    var clientKey = ClientKey.none
    let clientHTTP10: Bool
    /// Held once, by the response relay (see ``RequestSerializer/requestID(_:_:)``).
    var requestID: RequestID { relay.requestID }
    let isIdempotent: Bool
    let isHeadRequest: Bool
    /// What the client's head said (framing, Expect, Host, Upgrade); the request ID is the relay's.
    let facts: RequestSerializer.Facts
    /// How the request body goes upstream.
    enum UpstreamBodyFraming {
        /// As the client framed it: `Content-Length`, or no body.
        case asSent
        /// Re-chunked, one chunk per part (the client chunked it).
        case chunked
        /// A chunked body being read whole before admission, held as its payload alone:
        /// when it ends before admission without trailers it goes upstream with
        /// `Content-Length` (``asSent`` from then on), as nginx sends a buffered body —
        /// an upstream that reads bodies by their length only (an HTTP/1.0 server)
        /// gets it whole; otherwise its held parts become chunks (``chunked``).
        case heldUnframed
    }
    var upstreamFraming: UpstreamBodyFraming
    /// Where the request body ends in the client's bytes.
    var bodyFramer: BodyFramer
    /// A chunked body's trailer section, as it arrives (rare).
    var trailerSection: ByteBuffer?

    /// Where the exchange is, and its single end (``ExchangeLifecycle``).
    var lifecycle: ExchangeLifecycle
    var upstream = 0
    var tried: [Int] = []
    /// Admission: holds a slot that must be released exactly once — unless its upstream
    /// left rotation meanwhile and the slot was given back then (``UpstreamSlotHolders``).
    var holdsSlot = false
    /// Its ticket with this loop's ``UpstreamSlotHolders`` for `countedUpstream`, while it
    /// holds a slot.
    var slotTicket: UInt32 = 0
    /// Admission: waiting in the queue under this id.
    var queueID: Int?
    var queueTimer: Scheduled<Void>?
    var connection: UpstreamConnection?
    /// Its place in the pool's queue while waiting at the connection cap.
    var capWait: CapWait?
    /// Request bytes produced before an upstream connection was ready.
    var pending: [ByteBuffer] = []
    var requestComplete = false
    var bodyBytes = 0
    /// A body byte went upstream: the request can no longer be replayed elsewhere
    /// unless its body is held (``bodyHeld``).
    var bodyForwarded = false
    var relay: ResponseRelay
    /// The client's address: the peer, or behind a trusted proxy the address it reported.
    var client = ""
    /// Holds a place among `limits.max_tunnels` while its upgrade is pending.
    var tunnelReserved = false
    /// The peer is in `trusted_proxies`: its `X-Forwarded-For` is kept.
    var peerTrusted = false
    /// Every per-exchange timeout (``ExchangeDeadlines``).
    var deadlines: ExchangeDeadlines
    /// The body is being read whole before admission (`limits.request_buffer_bytes`).
    var buffering = false
    /// The body on disk (``RequestBodyPlan``): written while buffering, read out to the
    /// upstream once connected, closed when all of it went (or the exchange ended) —
    /// unless the body is held for a resend (``bodyHeld``), when it waits in ``sentSpool``.
    var spool: BodySpool?
    /// An idempotent request's whole body was read before admission and is still held —
    /// its memory part in ``pending`` (kept after it went out), the rest in the spool —
    /// so the request can go again to a fresh connection or another upstream, as a
    /// bodyless one can (nginx resends its buffered bodies alike:
    /// docs/results/held-bodies-2026-12-02). Let go once the
    /// response head went to the client (``releaseHeldBody()``).
    var bodyHeld = false
    /// The spool after all of it went upstream, kept while the body is held.
    var sentSpool: BodySpool?
    /// `100 Continue` went out.
    var continueSent = false
    var retriedStaleConnection = false
    /// Retried once on another upstream after a 502/503/504, a close before the head
    /// or an `upstream_header` timeout (never twice).
    var retriedElsewhere = false
    /// Holds a place in the retry budget, given back when the exchange ends.
    var holdsRetry = false
    /// Where a claimed retry goes.
    var retryTarget: Int?
    /// The route's priority class (admission and metrics).
    var route = Priority.normal
    /// The upstream this exchange counts as in flight on, in this loop's metrics.
    var countedUpstream: Int?
    /// Bytes written to the client for this exchange (head and body), for the access log.
    var bytesSent = 0
    /// What went wrong, when something did (an invalid upstream response, a close
    /// before its end, a timeout): the access log's `detail`.
    var problem: String?
    private let live: LiveObjects

    init(
        method: RequestMethod, target: Target, framing: BodyFraming, facts: RequestSerializer.Facts, clientHTTP10: Bool,
        clientKeepAlive: Bool, requestID: RequestID, live: LiveObjects, now: MonotonicTime, limits: ExchangeDeadlines.Limits
    ) {
        self.lifecycle = ExchangeLifecycle(now: now)
        self.deadlines = ExchangeDeadlines(limits: limits, now: now)
        live.exchangeBorn()
        self.live = live
        self.method = method
        self.target = target
        self.bodyFramer = BodyFramer(framing)
        self.facts = facts
        self.upstreamFraming = facts.chunked ? .chunked : .asSent
        self.clientHTTP10 = clientHTTP10
        self.isHeadRequest = method == .HEAD
        self.isIdempotent = method.isIdempotent
        self.relay = ResponseRelay(
            requestWasHead: method == .HEAD, clientHTTP10: clientHTTP10, clientKeepAlive: clientKeepAlive, requestID: requestID)
    }

    /// Nothing is lost by sending the request again: it has no body, or its whole body is held.
    var canResend: Bool { bodyHeld || (bodyBytes == 0 && !bodyForwarded && pending.isEmpty) }

    /// What ``RetryRules`` needs to know of this exchange.
    var retryAttempt: RetryRules.Attempt {
        RetryRules.Attempt(
            idempotent: isIdempotent, requestComplete: requestComplete, bodyResendable: canResend,
            retriedElsewhere: retriedElsewhere, resentOnFreshConnection: retriedStaleConnection)
    }

    /// Before a resend: the held body goes out again from its first byte (the memory
    /// part is still in ``pending``; the spool is rewound).
    func rewindHeldBody() {
        guard bodyHeld, let held = spool ?? sentSpool else { return }
        held.rewind()
        spool = held
        sentSpool = nil
    }

    /// No resend can follow (the response head went to the client, or the exchange
    /// ended): the held body's memory and disk go back.
    func releaseHeldBody() {
        guard bodyHeld else { return }
        bodyHeld = false
        pending.removeAll()
        sentSpool?.close()
        sentSpool = nil
    }

    deinit { live.exchangeDied() }
}

@available(*, unavailable)
extension Exchange: Sendable {}
