import DequeModule
import FluxgateCore
import NIOCore
import NIOHTTP1

/// ``ProxyHandler``'s attempts on upstreams: connecting (and failing over), the
/// response-head timer, relaying, retrying on 502/503/504 or a close before the head
/// (and, from the timer, on a response-head timeout) and completing.
extension ProxyHandler {
    // MARK: Upstream connection

    /// The request head for the exchange's current upstream: the upstream's own `Host`
    /// when its `host_header` says so, else the client's, with the upstream's authority
    /// standing in for a missing one (HTTP/1.0 clients may send none).
    func upstreamHead(_ exchange: Exchange) -> ByteBuffer {
        let hasHost = exchange.facts.hasHost
        let head = exchange.upstreamHead ?? ByteBuffer()  // prepared before any upstream is chosen
        if hasHost && !settings.rewritesHost { return head }
        // A reload publishes its settings before the router can pick a slot they add.
        if exchange.upstream >= settings.upstreams.count { adopt(runtime.settings) }
        if let host = settings.upstreams[exchange.upstream].hostHeader {
            return RequestSerializer.withField("host", host, dropping: hasHost ? .host : nil, from: head, allocator: allocator)
        }
        if hasHost { return head }
        return RequestSerializer.withField("host", settings.authorities[exchange.upstream], from: head, allocator: allocator)
    }

    func startUpstream(_ exchange: Exchange) {
        exchange.lifecycle.connecting(upstream: exchange.upstream)
        if exchange.countedUpstream != exchange.upstream {
            stats.traffic.moved(from: exchange.countedUpstream, to: exchange.upstream)
            if exchange.holdsSlot {
                // The slot moves with the attempt — unless the upstream it was on left
                // rotation meanwhile and gave it back: the request goes on without one.
                if let previous = exchange.countedUpstream, !stats.slotHolders.detach(previous, ticket: exchange.slotTicket) {
                    exchange.holdsSlot = false
                } else {
                    exchange.slotTicket = stats.slotHolders.attach(exchange.upstream)
                }
            }
            exchange.countedUpstream = exchange.upstream
        }
        if let connection = pool.takeIdle(exchange.upstream) {
            attach(connection, to: exchange)
            return
        }
        connectFresh(exchange)
    }

    func connectFresh(_ exchange: Exchange) {
        // Only a wait is kept: a completion that ran within `connect` (a refused
        // connect, then failover) may have started a wait of its own meanwhile.
        if let wait = pool.connect(exchange.upstream, { [self] result in connectCompleted(exchange, result) }) {
            exchange.capWait = wait
        }
    }

    func connectCompleted(_ exchange: Exchange, _ result: Result<UpstreamConnection, any Error>) {
        exchange.capWait = nil
        guard case .active(let current) = state, current === exchange else {
            // The exchange ended meanwhile: keep the fresh connection for the next one.
            if case .success(let connection) = result { pool.release(connection, now: now) }
            return
        }
        switch result {
        case .success(let connection):
            attach(connection, to: exchange)
        case .failure(let error) where error is UpstreamPool.WaitTimeout:
            answerForExchange(exchange, .upstreamTimeout)
        case .failure(let error) where error is UpstreamPool.ConnectQueueTimeout:
            tryNextUpstream(exchange, otherwise: .upstreamTimeout)
        case .failure(let error) where HealthProbe.isLocalExhaustion(error):
            // No health penalty and no failover: every upstream would fail the same way.
            runtime.noteLocalExhaustion(error, now: now)
            answerForExchange(exchange, .gatewayOutOfResources)
        case .failure(let error):
            let failure = HealthProbe.failure(connecting: error)
            upstreamFailed(exchange, failure)
            tryNextUpstream(exchange, otherwise: failure == .timeout ? .upstreamTimeout : .upstreamUnavailable)
        }
    }

    /// `failure` of `exchange`'s upstream, counted for its health and in its metrics —
    /// in the metrics only when the exchange's connection went to an address the slot
    /// no longer has: then it is the failure of the replica that left (a member whose
    /// address moved, ``UpstreamSlots/assign(previous:at:placements:)``), not of the one
    /// in the slot now, which starts with its own health. `connection`: the one the
    /// failure came over when the exchange no longer holds it (it closed).
    func upstreamFailed(_ exchange: Exchange, _ failure: UpstreamHealth.Failure, over connection: UpstreamConnection? = nil) {
        let current = (connection ?? exchange.connection)?.toCurrentAddress ?? true
        runtime.health.exchangeFailed(exchange.upstream, failure, now: now, current: current)
    }

    /// Nothing reached `exchange.upstream`: the next upstream that has not been tried,
    /// or `answer` when none is left. Not a retry of work: it takes nothing from the
    /// retry budget.
    func tryNextUpstream(_ exchange: Exchange, otherwise answer: GatewayAnswer) {
        exchange.tried.append(exchange.upstream)
        if let next = runtime.failover(&routing, after: exchange.upstream, tried: exchange.tried) {
            exchange.upstream = next
            stats.traffic.retried(.connectFailed)
            startUpstream(exchange)
        } else {
            answerForExchange(exchange, answer)
        }
    }

    func attach(_ connection: UpstreamConnection, to exchange: Exchange) {
        exchange.lifecycle.forwarding()
        exchange.connection = connection
        connection.delegate = self
        // Body bytes that arrived before the connection go right after the head (and
        // stay while the body is held for a resend).
        if !exchange.pending.isEmpty { exchange.bodyForwarded = true }
        let writable = connection.send(upstreamHead(exchange), exchange.pending)
        if !exchange.pending.isEmpty && !exchange.bodyHeld { exchange.pending.removeAll() }
        upstreamNeedsFlush = false
        if !writable { upstreamWritabilityChanged(isWritable: false) }
        if exchange.spool != nil {
            pumpSpool(exchange)
            guard case .active(let current) = state, current === exchange else { return }
        } else if exchange.requestComplete {
            requestSent(exchange)
        }
        resumeReadsIfPossible()
    }

    /// Closes the exchange's upstream connection without reusing it.
    func abortUpstream(_ exchange: Exchange) {
        exchange.deadlines.attemptRestarted()
        if let wait = exchange.capWait {
            exchange.capWait = nil
            pool.cancelWait(wait)
        }
        if let connection = exchange.connection {
            exchange.connection = nil
            connection.close()
        }
    }
}

// MARK: - Upstream events

extension ProxyHandler: UpstreamConnectionDelegate {
    var clientIsWritable: Bool { clientWritable }

    func upstreamBytes(_ buffer: ByteBuffer) {
        withEventTime { responseBytes(buffer) }
    }

    func responseBytes(_ buffer: ByteBuffer) {
        guard case .active(let exchange) = state else { return }
        let context = self.context!
        let headWasSent = exchange.relay.headSent
        let complete: Bool
        do {
            complete = try exchange.relay.receive(
                buffer, allocator: allocator, scratch: scratch, now: now, retry: { status in self.claimRetry(exchange, after: .status(status)) }
            ) { bytes in self.relay(bytes, of: exchange, on: context) }
        } catch {
            upstreamFailed(exchange, .malformed)
            exchange.problem = "invalid_response: \(error)"
            runtime.noteInvalidResponse(
                upstream: upstreamName(exchange.upstream), problem: error.description, requestID: exchange.requestID, now: now)
            if exchange.relay.headSent { closeClient(.cutOff) } else { answerForExchange(exchange, .upstreamError) }
            return
        }
        if exchange.relay.switched {
            startTunnel(exchange)
            return
        }
        if exchange.relay.headSent {
            exchange.lifecycle.responseHeadSent()
            if headWasSent {
                exchange.deadlines.upstreamProgress(now: now)
            } else {
                // The client has the answer's head: nothing will be resent.
                exchange.releaseHeldBody()
                exchange.deadlines.responseHeadReceived(now: now)
                // upstream_read may be shorter than the upstream_header the timer was set for.
                armExchangeTimer(exchange)
            }
        }
        guard complete else { return }
        if exchange.relay.discardedForRetry {
            retryElsewhere(exchange, after: .status(exchange.relay.status ?? 502), cause: .status)
        } else {
            completeExchange(exchange)
        }
    }

    /// Whether the request goes to another upstream after `failure` (docs/ARCHITECTURE.md,
    /// "Retries"): the pure ``RetryRules`` allow it, the balancer has another upstream
    /// and the retry budget a place. On true the place is taken and the target chosen
    /// (``retryElsewhere(_:after:cause:over:)``).
    func claimRetry(_ exchange: Exchange, after failure: RetryRules.Failure) -> Bool {
        retryAction(exchange, after: failure) == .anotherUpstream && claimAnotherUpstream(exchange)
    }

    /// ``RetryRules``' answer for `exchange` after `failure`.
    func retryAction(_ exchange: Exchange, after failure: RetryRules.Failure) -> RetryRules.Action {
        RetryRules.next(after: failure, exchange.retryAttempt, onTimeout: settings.config.retry.onTimeout)
    }

    /// Another upstream and a place in the retry budget, for a request the rules let go.
    func claimAnotherUpstream(_ exchange: Exchange) -> Bool {
        guard let next = runtime.failover(&routing, after: exchange.upstream, tried: exchange.tried + [exchange.upstream]) else {
            return false
        }
        guard runtime.startRetry() else {
            if runtime.retriesEnabled { stats.traffic.retryRefusedByBudget() }
            return false
        }
        exchange.retryTarget = next
        exchange.holdsRetry = true
        return true
    }

    /// A retry was claimed (``claimRetry(_:after:)``) after `failure` — the upstream's
    /// 502/503/504, its connection closed before the response head, or no head within
    /// `upstream_header`: counted against that upstream's
    /// health, its connection closed (its answer is unread or never came; the upstream
    /// deadlines restart with it), and the request started again on the chosen upstream
    /// with a fresh relay. `cause` is what `fluxgate_retries_total` counts it as (each
    /// caller knows; inferred from `failure` it needed a catch-all).
    func retryElsewhere(_ exchange: Exchange, after failure: UpstreamHealth.Failure, cause: RetryCause, over connection: UpstreamConnection? = nil) {
        upstreamFailed(exchange, failure, over: connection)
        abortUpstream(exchange)
        exchange.tried.append(exchange.upstream)
        exchange.retriedElsewhere = true
        exchange.upstream = exchange.retryTarget!
        exchange.retryTarget = nil
        exchange.relay = exchange.relay.restarted()
        exchange.rewindHeldBody()
        stats.traffic.retried(cause)
        startUpstream(exchange)
    }

    /// The upstream answered the upgrade with 101 (already on its way to the client):
    /// the exchange ends here — its admission slot goes back, it is counted as a
    /// proxied 101 — and a ``TunnelHandler`` takes both connections over, in place of
    /// this handler (and, with `parser: llhttp`, the decoder). Its tunnel place passes to the tunnel.
    func startTunnel(_ exchange: Exchange) {
        guard let connection = exchange.connection else {
            closeClient(.cutOff)
            return
        }
        exchange.connection = nil
        exchange.tunnelReserved = false
        runtime.health.exchangeSucceeded(exchange.upstream, current: connection.toCurrentAddress)
        runtime.tunnelsOpened.add(1, ordering: .relaxed)
        end(exchange, .proxied(status: 101))
        state = .tunnelled
        // No timeout of this handler's applies any more (the tunnel has its own); it
        // stays listed in the slot table until the close (the drain sees it).
        _ = clientTimeouts?.connectionClosed()
        timer.disarm()
        let context = self.context!
        let tunnel = TunnelHandler(
            upstream: connection, runtime: runtime, idleTimeout: settings.tunnelIdle, early: exchange.relay.switchedBytes)
        let pipeline = context.pipeline.syncOperations
        do {
            try pipeline.addHandler(tunnel, position: .after(self))
            // Bytes the client sent after its upgrade request belong to the new protocol.
            if let early = receive, early.readableBytes > 0 {
                connection.write(early)
                connection.flush()
            }
            releaseReceive()
            // With `parser: llhttp`, the decoder and its bridge go too.
            if let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
                pipeline.removeHandler(decoder, promise: nil)
            }
            if let bridge = try? pipeline.handler(type: LlhttpRequestBridge.self) {
                pipeline.removeHandler(bridge, promise: nil)
            }
            pipeline.removeHandler(context: context, promise: nil)
        } catch {
            runtime.releaseTunnel()
            connection.close()
            context.close(promise: nil)
        }
    }

    func completeExchange(_ exchange: Exchange) {
        if let status = exchange.relay.status, status >= 500 {
            upstreamFailed(exchange, .status(status))
        } else if runtime.health.anyFailureStreak {
            runtime.health.exchangeSucceeded(exchange.upstream, current: exchange.connection?.toCurrentAddress ?? true)
        }
        exchange.deadlines.responseComplete()
        // Taken, not read and cleared: a read is a retain, the clearing its release.
        if let connection = exchange.connection.take() {
            if exchange.requestComplete && exchange.relay.upstreamReusable {
                pool.release(connection, now: now)
            } else {
                connection.close()
                if exchange.relay.bytesAfterEnd {
                    // As nginx warns "upstream sent more data than specified".
                    exchange.problem = "bytes_after_end: the upstream sent more than its response; connection not reused"
                    runtime.noteInvalidResponse(
                        upstream: upstreamName(exchange.upstream), problem: "bytes after the end of the response",
                        requestID: exchange.requestID, now: now)
                }
            }
        }
        end(exchange, .proxied(status: exchange.relay.status ?? 0))
        finishResponse(keepAlive: exchange.relay.clientKeepAlive && exchange.requestComplete)
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        guard case .active(let exchange) = state else { return }
        // A spooled body still going out is the upstream's to take (`upstream_send`).
        exchange.deadlines.upstreamWritable(isWritable || (exchange.requestComplete && exchange.spool == nil), now: now)
        if isWritable {
            if exchange.spool != nil && exchange.connection != nil {
                pumpSpool(exchange)
                guard case .active(let current) = state, current === exchange else { return }
            }
            resumeReadsIfPossible()
        } else {
            armExchangeTimer(exchange)
        }
    }

    /// Response bytes for the client (``ResponseRelay``'s output), counted for the access log.
    @inline(__always)
    func relay(_ bytes: ByteBuffer, of exchange: Exchange, on context: ChannelHandlerContext) {
        exchange.bytesSent += bytes.readableBytes
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    func upstreamClosed(error: (any Error)?) {
        guard case .active(let exchange) = state else { return }
        let connection = exchange.connection
        exchange.connection = nil
        if error == nil, exchange.relay.upstreamClosed(emit: { relay($0, of: exchange, on: context) }) {
            completeExchange(exchange)
            return
        }
        if exchange.relay.headSent {
            upstreamFailed(exchange, .reset, over: connection)
            exchange.problem = "upstream_closed: before the end of the response body"
            closeClient(.cutOff)
            return
        }
        // Closed before its head (RetryRules): a reused keep-alive connection that the
        // upstream closed just as it was picked is resent on a fresh one; on a fresh
        // connection (or again after the resend) the upstream failed it — another
        // upstream may answer, as after a 502.
        let reused = (connection?.servedRequests ?? 0) > 0
        switch retryAction(exchange, after: .closedBeforeHead(reusedConnection: reused)) {
        case .resendOnFreshConnection:
            exchange.retriedStaleConnection = true
            stats.traffic.retried(.staleConnection)
            exchange.deadlines.attemptRestarted()
            exchange.rewindHeldBody()
            exchange.lifecycle.connecting(upstream: exchange.upstream)
            connectFresh(exchange)
            return
        case .anotherUpstream where claimAnotherUpstream(exchange):
            retryElsewhere(exchange, after: .reset, cause: .closedBeforeHead, over: connection)
            return
        case .anotherUpstream, .fail:
            break
        }
        upstreamFailed(exchange, .reset, over: connection)
        exchange.problem = "upstream_closed: before the response head"
        answerForExchange(exchange, .upstreamError)
    }
}
