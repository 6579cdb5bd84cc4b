import DequeModule
import FluxgateCore
import NIOCore
import NIOHTTP1

/// Admission for ``ProxyHandler``, and the one place an exchange ends.
extension ProxyHandler {
    // MARK: Admission

    /// Per-client bucket, global bucket, then the utilization rule (docs/CONFIGURATION.md, "Admission control").
    func admit(_ exchange: Exchange) {
        let priority = settings.priority(forTarget: exchange.target)
        exchange.route = priority
        let clientKey = exchange.clientKey
        let eventLoop = self.eventLoop
        let verdict = runtime.gate.admit(clientKey: clientKey, priority: priority, now: now, jitter: pool.nextJitter()) {
            let bound = NIOLoopBound((self, exchange), eventLoop: eventLoop)
            return (eventLoop, { resumption in
                let (handler, exchange) = bound.value
                handler.queueResumed(exchange, resumption)
            })
        }
        switch verdict {
        case .admitted:
            admitted(exchange)
        case .queued(let id, let deadline):
            prepareUpstreamHead(exchange)
            exchange.lifecycle.queued(now: now)
            exchange.queueID = id
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            exchange.queueTimer = eventLoop.scheduleTask(deadline: NIODeadline(deadline)) {
                let handler = bound.value
                handler.runtime.gate.expire(now: handler.now, jitter: handler.pool.nextJitter())
            }
        case .rejected(let rejection):
            shed(exchange, rejection)
        }
    }

    /// A request whose client waits for `100 Continue` before it sends a body that is
    /// read whole before admission: refused at once, without the 100, when admission
    /// would refuse it now — the client never sends the body (RFC 9110 §10.1.1; nginx
    /// answers `limit_req` before reading a body too). Until 2026-12-05 a shed upload
    /// was read whole first (3 MB for `curl -T`), then refused. Returns whether it was.
    func refusedBeforeContinue(_ exchange: Exchange) -> Bool {
        let priority = settings.priority(forTarget: exchange.target)
        guard let rejection = runtime.gate.preview(clientKey: exchange.clientKey, priority: priority, now: now, jitter: pool.nextJitter())
        else { return false }
        exchange.route = priority
        shed(exchange, rejection)
        return true
    }

    /// The time of the channel event being handled (``withEventTime(_:)``), else the clock.
    var now: MonotonicTime { eventTime ?? MonotonicTime(eventLoop.now) }

    /// Runs `body` with one clock reading shared by every step of the event: a request's
    /// start, admission, lifecycle and timers, or a response's head, end and the next
    /// pipelined request. About ten reads per proxied request became two (the clock was
    /// 4 % of the gateway's user time, docs/PERFORMANCE.md). The reading lives only while
    /// the event is handled, so it is never older than that; nested events keep the
    /// outer reading.
    @inline(__always)
    func withEventTime(_ body: () -> Void) {
        guard eventTime == nil else { return body() }
        eventTime = MonotonicTime(eventLoop.now)
        defer { eventTime = nil }
        body()
    }

    func queueResumed(_ exchange: Exchange, _ resumption: AdmissionGate.Resumption) {
        guard case .active(let current) = state, current === exchange, exchange.queueID != nil else {
            // The client left meanwhile; a slot granted to it goes straight back.
            if case .admitted = resumption { runtime.gate.release(serviceTime: nil, now: now) }
            return
        }
        exchange.queueID = nil
        exchange.queueTimer?.cancel()
        exchange.queueTimer = nil
        switch resumption {
        case .admitted: admitted(exchange)
        case .rejected(let rejection): shed(exchange, rejection)
        }
    }

    func admitted(_ exchange: Exchange) {
        prepareUpstreamHead(exchange)
        exchange.holdsSlot = true
        exchange.lifecycle.admitted(now: now)
        let picked =
            settings.config.balancer == .leastRequests
            ? runtime.pickUpstream(&routing) { [stats] in stats.traffic.inFlight($0) } : runtime.pickUpstream(&routing)
        guard let upstream = picked.map(withRoom) else {
            // Capacity 0 is refused by admission already; this is the same answer.
            let retryAfter = RetryAfter.seconds(runtime.gate.recoveryEstimate, jitter: pool.nextJitter())
            shed(exchange, .init(reason: .noHealthyUpstream, retryAfterSeconds: retryAfter))
            return
        }
        exchange.upstream = upstream
        if exchange.facts.expectsContinue && !exchange.clientHTTP10 && !exchange.requestComplete {
            // RFC 9110 §10.1.1: admitted and within the body limit, so the client may send.
            sendContinue(exchange)
        }
        startUpstream(exchange)
    }

    /// `picked`, or the next routed upstream with room when this loop's requests on it
    /// hold its share of the slots already (``UpstreamSlotHolders/withRoom(_:limit:share:next:)``;
    /// the share: ``AdmissionGate/slotShare(maxConcurrency:loops:)``). By hand before
    /// 2026-12-08, one of two upstreams stopped under load took all 67 slots within a
    /// second and every request was shed (docs/results/by-hand-2026-12-08/). Nothing is
    /// allocated on the way (one upstream at its share under load asks on every request).
    func withRoom(_ picked: Int) -> Int {
        stats.slotHolders.withRoom(picked, limit: settings.upstreams.count, share: slotShare) { [self] in
            runtime.router.nextRouted(&routing, after: $0)
        }
    }

    /// Upstream `index`'s share of the slots on this loop (at least 1).
    func slotShare(_ index: Int) -> Int {
        guard index < settings.upstreams.count else { return .max }
        return runtime.gate.slotShare(maxConcurrency: settings.upstreams[index].maxConcurrency, loops: scratch.loops)
    }

    /// Answers a refused request: cheap, no upstream contact, connection kept.
    func shed(_ exchange: Exchange, _ rejection: AdmissionGate.Rejection) {
        // A body still arriving is not read on: the answer closes the connection (lingering).
        let keepAlive = exchange.relay.clientKeepAlive && exchange.requestComplete
        var bytes = scratch.takeAnswer(capacity: 512, allocator: allocator)
        let responses = runtime.responses
        scratch.withDateField(now: now) { date in
            responses.shed(
                rejection, requestID: exchange.requestID, close: !keepAlive, http10: exchange.clientHTTP10,
                includeBody: !exchange.isHeadRequest, date: date, into: &bytes)
        }
        exchange.bytesSent += bytes.readableBytes
        scratch.keepAnswer(bytes)
        context.write(wrapOutboundOut(bytes), promise: nil)
        end(exchange, .shed(rejection.reason))
        finishResponse(keepAlive: keepAlive)
    }

    /// The one place an exchange ends. Its lifecycle yields the outcome once (a second
    /// call — a client leaving while a gateway answer is written — does nothing), and
    /// what the exchange holds is settled here: its retry-budget place, its queue place
    /// or admission slot (a proxied exchange's upstream time feeds the queue's wait
    /// prediction), an upstream connection still attached (closed: the gateway answered
    /// instead, or the exchange was cut short). The outcome is counted here, and only
    /// here: this loop's metrics (``LoopStats``) and the access log.
    func end(_ exchange: Exchange, _ end: ExchangeLifecycle.End) {
        let now = self.now  // one clock read for the outcome and the slot's release
        guard let outcome = exchange.lifecycle.finish(end, now: now) else { return }
        if exchange.tunnelReserved {
            exchange.tunnelReserved = false
            runtime.releaseTunnel()
        }
        if exchange.holdsRetry {
            exchange.holdsRetry = false
            runtime.finishRetry()
        }
        if let id = exchange.queueID {
            exchange.queueID = nil
            exchange.queueTimer?.cancel()
            exchange.queueTimer = nil
            runtime.gate.cancel(id: id)
        }
        if exchange.holdsSlot, let counted = exchange.countedUpstream, !stats.slotHolders.detach(counted, ticket: exchange.slotTicket) {
            // Given back when its upstream left rotation (``UpstreamSlotHolders``).
            exchange.holdsSlot = false
        }
        if exchange.holdsSlot {
            exchange.holdsSlot = false
            let proxied = if case .proxied = end { true } else { false }
            runtime.gate.release(serviceTime: proxied ? outcome.upstreamTime : nil, now: now)
        }
        abortUpstream(exchange)
        if let spool = exchange.spool {
            exchange.spool = nil
            spool.close()
        }
        exchange.releaseHeldBody()
        if let head = exchange.upstreamHead.take() {
            // Nothing sends it again once the exchange ended: the next request may use it.
            scratch.keepUpstreamHead(head)
        }
        stats.record(outcome, route: exchange.route, countedUpstream: exchange.countedUpstream)
        exchange.countedUpstream = nil
        let accessLog = runtime.accessLog
        if accessLog.isEnabled, accessLog.sampled(pool.nextJitter() * 2) {
            accessLog.log(
                outcome, exchange: exchange, client: exchange.client, clientCertificate: clientCertificateSubject,
                upstream: outcome.upstream.map(upstreamName))
        }
    }
}

extension ProxyHandler {
    /// The configured name of upstream slot `index` (its index when the settings no
    /// longer have it: a reload removed it while the exchange ran).
    func upstreamName(_ index: Int) -> String {
        settings.upstreams.count > index ? settings.upstreams[index].name : "\(index)"
    }
}
