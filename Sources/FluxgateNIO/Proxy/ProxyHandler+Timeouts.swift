import FluxgateCore
import NIOCore

/// ``ProxyHandler``'s per-exchange timeouts: the decisions are ``ExchangeDeadlines``'s;
/// this shell owns one timer per client connection, re-armed lazily — a timer that
/// fires before the exchange's current deadline re-arms itself for it — so a busy
/// keep-alive connection does not allocate or cancel a timer per request.
extension ProxyHandler {
    /// The whole request went upstream: the response head is due.
    func requestSent(_ exchange: Exchange) {
        exchange.deadlines.requestSent(now: now)
        armExchangeTimer(exchange)
    }

    /// Makes sure the timer fires no later than the exchange's next deadline.
    func armExchangeTimer(_ exchange: Exchange) {
        guard case .active(let current) = state, current === exchange, let next = exchange.deadlines.nextDeadline else { return }
        let deadline = NIODeadline(next)
        if exchangeTimer != nil, let scheduled = exchangeTimerDeadline, scheduled <= deadline { return }
        exchangeTimer?.cancel()
        exchangeTimerDeadline = deadline
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        exchangeTimer = eventLoop.scheduleTask(deadline: deadline) { handler.value.exchangeTimerFired() }
    }

    func exchangeTimerFired() {
        exchangeTimer = nil
        exchangeTimerDeadline = nil
        guard case .active(let exchange) = state else { return }
        if let expiry = exchange.deadlines.expired(now: now) {
            timedOut(exchange, expiry)
        } else {
            armExchangeTimer(exchange)
        }
    }

    /// A phase stalled past its timeout: 408 for a request body that stopped before
    /// any answer, 504 for an upstream that stalled before its head, else a close
    /// (a started response cannot be replaced). Counted by phase.
    func timedOut(_ exchange: Exchange, _ expiry: ExchangeDeadlines.Expiry) {
        stats.traffic.timedOut(expiry)
        let started = exchange.relay.headSent
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
            if exchange.connection != nil { runtime.health.exchangeFailed(exchange.upstream, .timeout, now: now) }
            if started {
                closeClient(.cutOff)
            } else {
                answerForExchange(exchange, .upstreamTimeout)
            }
        case .request:
            if started {
                closeClient(.cutOff)
            } else {
                exchange.relay.closeAfterResponse()
                answerForExchange(exchange, .upstreamTimeout)
            }
        }
    }
}
