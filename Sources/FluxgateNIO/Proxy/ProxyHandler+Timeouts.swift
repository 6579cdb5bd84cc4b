import FluxgateCore
import FluxgateNIOSupport
import NIOCore

/// ``ProxyHandler``'s timeouts: the client connection's (``ClientConnectionTimeouts``:
/// the request-head timeout and the idle keep-alive timeout) and the current
/// exchange's (``ExchangeDeadlines``) — the decisions are theirs. This shell owns the
/// connection's one timer, an entry in its event loop's ``LoopTimers``, re-armed
/// lazily: it never sleeps longer than the shorter client timeout (the stride), so a
/// new deadline is rarely earlier than the pending entry, and an entry that fires
/// before anything is due re-arms for what is. A busy keep-alive connection schedules
/// nothing per request and cancels nothing; an idle one wakes once per stride.
/// (Until 2026-12-01 the exchange deadlines had a NIO timer of their own per
/// connection, which outlived each exchange by up to 30 s: ~0.3 KiB per idle
/// connection, docs/PERFORMANCE.md#memory-per-idle-connection.)
extension ProxyHandler: LoopTimerOwner {
    /// The whole request went upstream: the response head is due.
    func requestSent(_ exchange: Exchange) {
        exchange.deadlines.requestSent(now: now)
        armExchangeTimer(exchange)
    }

    /// Makes sure the timer fires no later than the exchange's next deadline.
    func armExchangeTimer(_ exchange: Exchange) {
        guard case .active(let current) = state, current === exchange else { return }
        armTimer(exchange)
    }

    /// Makes sure the timer fires no later than the earliest pending deadline.
    func armTimer() {
        if case .active(let exchange) = state {
            armTimer(exchange)
        } else {
            armTimer(nil)
        }
    }

    /// `exchange`: the current one, if any.
    private func armTimer(_ exchange: Exchange?) {
        var target: NIODeadline?
        if let deadline = clientTimeouts?.deadline { target = NIODeadline(deadline) }
        if let next = exchange?.deadlines.nextDeadline {
            target = min(target ?? .distantFuture, NIODeadline(next))
        }
        guard let target else { return }
        // A pending entry due first returns before the clock is read (the common case).
        timer.arm(target, cap: { NIODeadline(now) + timerStride }, owner: self, in: scratch.timers)
    }

    /// The client timeouts' events, acted on (``ClientConnectionTimeouts``).
    func clientTimeoutEvent(_ event: (inout ClientConnectionTimeouts) -> ClientConnectionTimeouts.Action) {
        guard clientTimeouts != nil else { return }
        switch event(&clientTimeouts!) {
        case .none, .cancelTimer:
            // A pending entry with nothing due re-arms for what is, when it fires.
            break
        case .schedule:
            armTimer()
        case .closeIdle:
            connectionGone()
            context.close(promise: nil)
        case .closeStalled:
            // Between requests, the client took none of the answers written to it for
            // `timeouts.client_send` (during one, the exchange's deadline closes it).
            stats.traffic.timedOut(.clientSend)
            connectionGone()
            context.close(promise: nil)
        case .park(let idleDeadline):
            offerForParking(until: NIODeadline(idleDeadline))
        case .rejectSlowHead:
            stats.traffic.refused(.headerTimeout)
            // A TLS handshake that never finished has no session to carry a 408: the
            // connection closes at once (until 2026-12-04 it lingered for
            // `timeouts.lingering_close` more, holding its descriptor 15 s by default).
            let answerable = !https || tlsEstablished
            let answer = answerable ? runtime.responses.requestTimeout(date: scratch.dateField(now: now)) : nil
            logRefusal(.requestTimeout, bytes: answer?.readableBytes ?? 0, detail: nil)
            connectionGone()
            guard let answer else {
                context.close(promise: nil)
                return
            }
            // A lingering close: the slow client may still be sending its head.
            context.writeThenLingeringClose(answer, timeout: lingerTimeout, writeTimeout: max(lingerTimeout, .seconds(5)))
        }
    }

    /// ``LoopTimers`` reached an entry of this connection's; only the current one counts.
    func loopTimerFired(at deadline: NIODeadline) {
        guard context != nil, timer.fired(at: deadline) else { return }
        withEventTime {
            let now = self.now
            clientTimeoutEvent { $0.timerFired(now: now) }
            if case .active(let exchange) = state, let expiry = exchange.deadlines.expired(now: now) {
                timedOut(exchange, expiry)
            }
            switch state {
            case .idle, .active: armTimer()
            case .closing, .tunnelled: break
            }
        }
    }

    /// The connection is over: the loop's timers let go of this handler; a pending
    /// entry fires into nothing. Idempotent.
    func stopTimer() {
        timer.release(from: scratch.timers)
    }

    /// A phase stalled past its timeout. Before any answer: 408 for a request body that
    /// stopped (or, at `timeouts.request`, was not whole yet), 503 `queue_timeout` for a
    /// request still queued for admission at `timeouts.request`, 504 for an upstream that
    /// stalled before its head — unless the request may go to another upstream
    /// (`retry.on_timeout`). After it: a close (a started response cannot be replaced).
    /// Counted by phase when it ends the request.
    func timedOut(_ exchange: Exchange, _ expiry: ExchangeDeadlines.Expiry) {
        let started = exchange.relay.headSent
        if expiry == .upstreamHeader, !started, exchange.connection != nil, claimRetry(exchange, after: .noHeadInTime) {
            retryElsewhere(exchange, after: .timeout, cause: .timeout)
            return
        }
        stats.traffic.timedOut(expiry)
        exchange.problem = "timeout: timeouts.\(expiry.rawValue)"
        switch expiry {
        case .clientBody:
            if started {
                closeClient(.cutOff)
            } else {
                exchange.relay.closeAfterResponse()
                answerForExchange(exchange, .bodyTimeout)
            }
        case .clientSend:
            closeClient(.cutOff)
        case .upstreamHeader, .upstreamSend, .upstreamRead:
            // A response body that pauses past `upstream_read` is cut, but the upstream
            // answered: a stream that goes quiet (server-sent events, a long poll) is
            // not a failure of the upstream's, and counting it ejected healthy replicas
            // serving idle event streams (found by hand, 2026-12-05; nginx does not count
            // a read timeout after the response started against the server either).
            if exchange.connection != nil && expiry != .upstreamRead { upstreamFailed(exchange, .timeout) }
            if started {
                closeClient(.cutOff)
            } else {
                answerForExchange(exchange, .upstreamTimeout)
            }
        case .request:
            if started {
                closeClient(.cutOff)
            } else if exchange.queueID != nil {
                // Still waiting for a slot: a wait in the queue, answered as the queue's
                // own timeouts are (503 `queue_timeout`, counted as a shed) — no upstream
                // was asked. Until 2026-12-07 this was 504 `upstream_timeout`.
                shed(exchange, runtime.gate.queueTimeout(jitter: pool.nextJitter()))
            } else {
                // A request the client had not sent whole: the client is the one behind,
                // 408 as for `client_body` (a trickling upload, read whole before
                // admission, reaches no upstream at all). One sent whole waits on its
                // upstream: 504. Until 2026-12-07 both were 504 `upstream_timeout`, which
                // blamed an upstream that had nothing to do with a slow upload (found by
                // trying `timeouts.request` on a byte-a-second upload).
                exchange.relay.closeAfterResponse()
                answerForExchange(exchange, exchange.requestComplete ? .upstreamTimeout : .bodyTimeout)
            }
        }
    }
}
