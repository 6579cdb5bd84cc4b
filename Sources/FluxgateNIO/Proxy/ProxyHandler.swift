import DequeModule
import FluxgateCore
import NIOCore
import NIOHTTP1

/// The client side of the data path: one per client connection, after NIOHTTP1's
/// request decoder (strict llhttp parsing of untrusted input).
///
/// For each request it picks an upstream, borrows a keep-alive connection from its
/// event loop's ``UpstreamPool``, writes the request as bytes (``RequestSerializer``)
/// and relays the response as bytes (``ResponseRelay``): no response decoding into
/// dictionaries and re-encoding, which is what separates a proxy at nginx's speed
/// from one at half of it (docs/ARCHITECTURE.md).
///
/// Backpressure: client reads are held back while the upstream connection is not
/// writable (or not yet connected); the upstream connection holds its reads while
/// this channel is not writable. Pipelined requests wait in a small queue and are
/// answered in order. Every failure becomes an answer (400/413/431/502/504) unless
/// the response had already started, when the only honest signal left is closing.
final class ProxyHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case idle
        case active(Exchange)
        /// A final answer went out; the connection closes once it is written.
        case closing
    }

    /// Input that arrived while an earlier request was still being answered.
    private enum Queued {
        case part(HTTPServerRequestPart)
        case parserError(any Error)
    }

    private let runtime: GatewayRuntime
    private let pool: any UpstreamConnector
    private let timeouts: ClientTimeoutHandler?
    private let maxBodyBytes: Int
    private let upstreamHeaderTimeout: TimeAmount
    /// Held here: reading `runtime.admission` per request copied the whole struct
    /// (retains of its arrays and dictionary, seen in the profile).
    private let admission: AdmissionConfig
    /// The ready upstreams as this connection last saw them.
    private var routing: GatewayRuntime.Routing
    private var state = State.idle
    /// The handler's own context, held only between `handlerAdded` and
    /// `handlerRemoved`: the context owns this handler, so holding it longer is a
    /// retain cycle that keeps the whole connection alive after it closed
    /// (docs/ARCHITECTURE.md, "Who owns whom"). Timers and admission callbacks that
    /// may still arrive after the close check `state` first and use ``eventLoop``.
    private var context: ChannelHandlerContext!
    /// The connection's event loop, which is also its pool's.
    private let eventLoop: any EventLoop
    private var allocator = ByteBufferAllocator()
    private var clientAddress = "unknown"
    private var readPending = false
    private var upstreamNeedsFlush = false
    /// A `Deque` allocates nothing until something is queued: most connections never pipeline.
    private var queue = Deque<Queued>()
    private var queuedBytes = 0
    private var clientInputClosed = false
    private var headerTimer: Scheduled<Void>?
    private var headerTimerDeadline: NIODeadline?
    private static let crlf = ByteBuffer(string: "\r\n")
    /// Pipelined input held before reads pause, as HTTPServerPipelineHandler bounds it.
    private static let maxQueuedBytes = 65_536

    init(runtime: GatewayRuntime, pool: any UpstreamConnector, timeouts: ClientTimeoutHandler?) {
        self.runtime = runtime
        self.pool = pool
        self.eventLoop = pool.eventLoop
        self.timeouts = timeouts
        self.maxBodyBytes = runtime.config.limits.maxBodyBytes
        self.upstreamHeaderTimeout = .nanoseconds(runtime.config.timeouts.upstreamHeader.nanosecondsClamped)
        self.routing = runtime.routing
        self.admission = runtime.admission
        runtime.live.clientHandlers.born()
    }

    deinit { runtime.live.clientHandlers.died() }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.allocator = context.channel.allocator
    }

    /// NIO removes every handler when the channel closes; this is where the
    /// handler ↔ context cycle ends. A removal from a still-open pipeline (not done
    /// today) ends the exchange the same way a close does.
    func handlerRemoved(context: ChannelHandlerContext) {
        connectionGone()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if let ip = context.channel.remoteAddress?.ipAddress { clientAddress = ip }
        context.fireChannelActive()
    }

    // MARK: Client → upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .closing = state { return }
        if queue.isEmpty && acceptsInput {
            handle(part)
        } else {
            enqueue(.part(part))
            drainQueue()
        }
    }

    /// Whether input can be handled now: between requests, or while the current
    /// request is still arriving. Parts of the next request wait for this one's answer.
    private var acceptsInput: Bool {
        switch state {
        case .idle: true
        case .active(let exchange): !exchange.requestComplete
        case .closing: false
        }
    }

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head): requestHead(head)
        case .body(let buffer): requestBody(buffer)
        case .end(let trailers): requestEnd(trailers)
        }
    }

    private func enqueue(_ item: Queued) {
        if case .part(.body(let buffer)) = item { queuedBytes += buffer.readableBytes }
        queuedBytes += 64
        queue.append(item)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if upstreamNeedsFlush, case .active(let exchange) = state {
            upstreamNeedsFlush = false
            exchange.connection?.flush()
        }
        context.fireChannelReadComplete()
    }

    private func requestHead(_ head: HTTPRequestHead) {
        guard case .idle = state else { return }
        timeouts?.requestHeadReceived(context: context)
        let (facts, policy) = RequestSerializer.inspect(head.headers)
        let requestID = facts.requestID ?? pool.nextRequestID()
        let http10 = head.version.major == 1 && head.version.minor == 0
        if let length = facts.contentLength, length > maxBodyBytes {
            answer(.bodyTooLarge, requestID: requestID, http10: http10, close: true, isHead: head.method == .HEAD)
            return
        }
        let exchange = Exchange(
            clientHead: head, facts: facts, policy: policy, clientHTTP10: http10,
            clientKeepAlive: policy.keepsAlive(http10: http10), requestID: requestID, live: runtime.live, now: now)
        state = .active(exchange)
        admit(exchange)
    }

    // MARK: Admission

    /// Per-client bucket, global bucket, then the utilization rule (SPEC §4).
    private func admit(_ exchange: Exchange) {
        let head = exchange.clientHead
        let priority = admission.priority(forTarget: head.uri)
        let clientKey = runtime.clientKeyHeader.flatMap { head.headers.first(name: $0) } ?? clientAddress
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
            exchange.lifecycle.queued(now: now)
            exchange.queueID = id
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            exchange.queueTimer = eventLoop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, deadline.nanoseconds)))) {
                let handler = bound.value
                handler.runtime.gate.expire(now: handler.now, jitter: handler.pool.nextJitter())
            }
        case .rejected(let rejection):
            shed(exchange, rejection)
        }
    }

    private var now: MonotonicTime { MonotonicTime(nanoseconds: Int64(eventLoop.now.uptimeNanoseconds)) }

    private func queueResumed(_ exchange: Exchange, _ resumption: AdmissionGate.Resumption) {
        guard case .active(let current) = state, current === exchange, exchange.queueID != nil else {
            // The client left meanwhile; a slot granted to it goes straight back.
            if case .admitted = resumption { runtime.gate.release(serviceTime: nil) }
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

    private func admitted(_ exchange: Exchange) {
        exchange.holdsSlot = true
        exchange.admittedAt = eventLoop.now
        exchange.lifecycle.admitted(now: now)
        guard let upstream = runtime.pickUpstream(&routing) else {
            // Capacity 0 is refused by admission already; this is the same answer.
            let retryAfter = RetryAfter.seconds(runtime.gate.recoveryEstimate, jitter: pool.nextJitter())
            shed(exchange, .init(reason: .noHealthyUpstream, retryAfterSeconds: retryAfter))
            return
        }
        exchange.upstream = upstream
        exchange.upstreamHead = RequestSerializer.head(
            exchange.clientHead, policy: exchange.policy, facts: exchange.facts, requestID: exchange.requestID,
            clientAddress: clientAddress, upstreamAuthority: runtime.authorities[upstream], allocator: allocator)
        if exchange.facts.expectsContinue && !exchange.clientHTTP10 && !exchange.requestComplete {
            // RFC 9110 §10.1.1: admitted and within the body limit, so the client may send.
            context.writeAndFlush(wrapOutboundOut(GatewayResponses.continueResponse), promise: nil)
        }
        startUpstream(exchange)
    }

    /// Answers a refused request: cheap, no upstream contact, connection kept.
    private func shed(_ exchange: Exchange, _ rejection: AdmissionGate.Rejection) {
        let keepAlive = exchange.relay.clientKeepAlive
        let bytes = runtime.responses.shed(
            rejection, requestID: exchange.requestID, close: !keepAlive, http10: exchange.clientHTTP10,
            includeBody: !exchange.isHeadRequest, allocator: allocator)
        context.write(wrapOutboundOut(bytes), promise: nil)
        end(exchange, .shed(rejection.reason))
        finishResponse(keepAlive: keepAlive)
    }

    /// The one place an exchange ends. Its lifecycle yields the outcome once (a second
    /// call — a client leaving while a gateway answer is written — does nothing), and
    /// what the exchange holds is settled here: its admission slot or queue place, its
    /// retry-budget place, an upstream connection still attached (closed: the gateway
    /// answered instead, or the exchange was cut short). The outcome is counted; the
    /// access log and metrics will hang off this point too.
    private func end(_ exchange: Exchange, _ end: ExchangeLifecycle.End) {
        guard let outcome = exchange.lifecycle.finish(end, now: now) else { return }
        if case .proxied = end {
            leaveAdmission(exchange, served: true)
        } else {
            leaveAdmission(exchange, served: false)
        }
        abortUpstream(exchange)
        runtime.outcomes.record(outcome)
    }

    /// Gives back what admission (and the retry budget) lent the exchange; safe to
    /// call more than once.
    private func leaveAdmission(_ exchange: Exchange, served: Bool) {
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
        if exchange.holdsSlot {
            exchange.holdsSlot = false
            let serviceTime = served ? exchange.admittedAt.map { Duration.nanoseconds(Int64((eventLoop.now - $0).nanoseconds)) } : nil
            runtime.gate.release(serviceTime: serviceTime)
        }
    }

    private func requestBody(_ buffer: ByteBuffer) {
        guard case .active(let exchange) = state else { return }
        exchange.bodyBytes += buffer.readableBytes
        if exchange.bodyBytes > maxBodyBytes {
            if exchange.relay.headSent {
                closeClient(.cutOff)
            } else {
                end(exchange, .gatewayAnswer(status: 413))
                answer(.bodyTooLarge, requestID: exchange.requestID, http10: exchange.clientHTTP10, close: true, isHead: false)
            }
            return
        }
        if exchange.chunkedBody {
            sendUpstream(RequestSerializer.chunkHeader(buffer.readableBytes, allocator: allocator), exchange)
            sendUpstream(buffer, exchange)
            sendUpstream(Self.crlf, exchange)
        } else {
            sendUpstream(buffer, exchange)
        }
    }

    private func requestEnd(_ trailers: HTTPHeaders?) {
        guard case .active(let exchange) = state else { return }
        exchange.requestComplete = true
        exchange.relay.requestComplete = true
        if exchange.chunkedBody {
            sendUpstream(RequestSerializer.lastChunk(trailers: trailers, allocator: allocator), exchange)
        }
        if let connection = exchange.connection {
            connection.flush()
            upstreamNeedsFlush = false
            armHeaderTimer(exchange)
        }
    }

    /// Body bytes (and chunk framing) for the upstream: written now, or held until connected.
    private func sendUpstream(_ bytes: ByteBuffer, _ exchange: Exchange) {
        if let connection = exchange.connection {
            connection.write(bytes)
            upstreamNeedsFlush = true
            exchange.bodyForwarded = true
        } else {
            exchange.pending.append(bytes)
        }
    }

    // MARK: Upstream connection

    private func startUpstream(_ exchange: Exchange) {
        exchange.lifecycle.connecting(upstream: exchange.upstream)
        if let connection = pool.takeIdle(exchange.upstream) {
            attach(connection, to: exchange)
            return
        }
        connectFresh(exchange)
    }

    private func connectFresh(_ exchange: Exchange) {
        pool.connect(exchange.upstream) { [self] result in
            connectCompleted(exchange, result)
        }
    }

    private func connectCompleted(_ exchange: Exchange, _ result: Result<UpstreamConnection, any Error>) {
        guard case .active(let current) = state, current === exchange else {
            // The exchange ended meanwhile: keep the fresh connection for the next one.
            if case .success(let connection) = result { pool.release(connection) }
            return
        }
        switch result {
        case .success(let connection):
            attach(connection, to: exchange)
        case .failure(let error) where error is UpstreamPool.WaitTimeout:
            answerForExchange(exchange, .upstreamTimeout)
        case .failure(let error):
            let failure = HealthProbe.failure(connecting: error)
            runtime.health.exchangeFailed(exchange.upstream, failure, now: now)
            exchange.tried.append(exchange.upstream)
            // Nothing reached the upstream: trying the next one is not a retry of work
            // and takes nothing from the retry budget.
            if let next = runtime.failover(&routing, after: exchange.upstream, tried: exchange.tried) {
                exchange.upstream = next
                startUpstream(exchange)
            } else {
                answerForExchange(exchange, failure == .timeout ? .upstreamTimeout : .upstreamUnavailable)
            }
        }
    }

    private func attach(_ connection: UpstreamConnection, to exchange: Exchange) {
        exchange.lifecycle.forwarding()
        exchange.connection = connection
        connection.delegate = self
        connection.write(exchange.upstreamHead)
        if !exchange.pending.isEmpty {
            exchange.bodyForwarded = true
            for bytes in exchange.pending { connection.write(bytes) }
            exchange.pending.removeAll()
        }
        connection.flush()
        upstreamNeedsFlush = false
        if exchange.requestComplete { armHeaderTimer(exchange) }
        resumeReadsIfPossible()
    }

    /// One timer per client connection, re-armed lazily: a timer that fires early
    /// re-arms itself for the exchange's real deadline, so a keep-alive connection
    /// does not allocate a timer per request.
    private func armHeaderTimer(_ exchange: Exchange) {
        guard !exchange.relay.headSent else { return }
        let deadline = eventLoop.now + upstreamHeaderTimeout
        exchange.headerDeadline = deadline
        if headerTimer != nil, let scheduled = headerTimerDeadline, scheduled <= deadline { return }
        scheduleHeaderTimer(at: deadline)
    }

    private func scheduleHeaderTimer(at deadline: NIODeadline) {
        headerTimer?.cancel()
        headerTimerDeadline = deadline
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        headerTimer = eventLoop.scheduleTask(deadline: deadline) { handler.value.headerTimerFired() }
    }

    private func headerTimerFired() {
        headerTimer = nil
        headerTimerDeadline = nil
        guard case .active(let exchange) = state, !exchange.relay.headSent, let deadline = exchange.headerDeadline else { return }
        if eventLoop.now < deadline {
            scheduleHeaderTimer(at: deadline)
            return
        }
        runtime.health.exchangeFailed(exchange.upstream, .timeout, now: now)
        abortUpstream(exchange)
        answerForExchange(exchange, .upstreamTimeout)
    }

    /// Closes the exchange's upstream connection without reusing it.
    private func abortUpstream(_ exchange: Exchange) {
        exchange.headerDeadline = nil
        if let connection = exchange.connection {
            exchange.connection = nil
            connection.close()
        }
    }

    // MARK: Answers and completion

    /// Answers an active exchange with the gateway's own response.
    private func answerForExchange(_ exchange: Exchange, _ kind: GatewayAnswer) {
        end(exchange, .gatewayAnswer(status: Int(kind.status.code)))
        let keepAlive = exchange.relay.clientKeepAlive && exchange.requestComplete
        answer(kind, requestID: exchange.requestID, http10: exchange.clientHTTP10, close: !keepAlive, isHead: exchange.isHeadRequest)
    }

    private func answer(_ kind: GatewayAnswer, requestID: RequestID?, http10: Bool, close: Bool, isHead: Bool) {
        let bytes = runtime.responses.response(
            kind, requestID: requestID, close: close, http10: http10, includeBody: !isHead, allocator: allocator)
        context.write(wrapOutboundOut(bytes), promise: nil)
        finishResponse(keepAlive: !close)
    }

    /// The answer to the current request was written (the exchange, if any, has already
    /// ended): keep the connection for the next request, or close it.
    private func finishResponse(keepAlive: Bool) {
        guard keepAlive && !clientInputClosed else {
            state = .closing
            let context = self.context!
            context.writeAndFlush(wrapOutboundOut(allocator.buffer(capacity: 0))).whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        state = .idle
        context.flush()
        timeouts?.responseCompleted(context: context)
        drainQueue()
        resumeReadsIfPossible()
    }

    /// Serves pipelined input that waited for the previous response.
    private func drainQueue() {
        while acceptsInput, let item = queue.popFirst() {
            switch item {
            case .part(let part):
                if case .body(let buffer) = part { queuedBytes -= buffer.readableBytes }
                queuedBytes -= 64
                handle(part)
            case .parserError(let error):
                parserErrorReached(error)
            }
        }
        if case .idle = state, clientInputClosed, queue.isEmpty { closeClient() }
    }

    /// The decoder gave up at this point of the input: answer 400/431 unless the
    /// current response already started, in which case closing is the only signal.
    private func parserErrorReached(_ error: any Error) {
        switch state {
        case .idle:
            answerParserError(error)
        case .active(let exchange):
            if exchange.relay.headSent {
                closeClient(.cutOff)
            } else {
                end(exchange, .gatewayAnswer(status: (error as? HTTPParserError) == .headerOverflow ? 431 : 400))
                answerParserError(error)
            }
        case .closing:
            break
        }
    }

    private func answerParserError(_ error: any Error) {
        let kind: GatewayAnswer = (error as? HTTPParserError) == .headerOverflow ? .headersTooLarge : .badRequest
        answer(kind, requestID: nil, http10: false, close: true, isHead: false)
    }

    /// Closes the client connection after what was already written (a truncated
    /// response still reaches the client, which sees its framing cut short). An exchange
    /// still running ends as `end`.
    private func closeClient(_ end: ExchangeLifecycle.End = .clientGone) {
        if case .active(let exchange) = state { self.end(exchange, end) }
        state = .closing
        context.flush()
        context.close(promise: nil)
    }

    private func resumeReadsIfPossible() {
        guard readPending, mayRead else { return }
        readPending = false
        context.read()
    }

    private var mayRead: Bool {
        if queuedBytes > Self.maxQueuedBytes { return false }
        if case .active(let exchange) = state, !exchange.requestComplete {
            guard let connection = exchange.connection, connection.isWritable else { return false }
        }
        return true
    }

    // MARK: Channel events

    func read(context: ChannelHandlerContext) {
        if mayRead {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .active(let exchange) = state {
            exchange.connection?.resumeReads()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            // The client finished sending: answer what it asked, then close.
            clientInputClosed = true
            if case .idle = state, queue.isEmpty { closeClient() }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionGone()
        context.fireChannelInactive()
    }

    /// The client connection is gone: give back what the exchange holds and stop
    /// every timer, so nothing scheduled keeps this handler alive. Idempotent.
    private func connectionGone() {
        if case .active(let exchange) = state {
            // A client that leaves mid-request frees its upstream connection: closed, never reused.
            end(exchange, .clientGone)
        }
        state = .closing
        headerTimer?.cancel()
        headerTimer = nil
        queue.removeAll()
        queuedBytes = 0
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            // Parsing stops here; answer in order, after any response still owed.
            if queue.isEmpty && acceptsInput {
                parserErrorReached(error)
            } else {
                enqueue(.parserError(error))
                drainQueue()
            }
            return
        }
        if error is ByteToMessageDecoderError { return }  // input after a parse error: already answered
        closeClient()
    }
}

// MARK: - Upstream events

extension ProxyHandler: UpstreamConnectionDelegate {
    var clientIsWritable: Bool { context?.channel.isWritable ?? false }

    func upstreamBytes(_ buffer: ByteBuffer) {
        guard case .active(let exchange) = state else { return }
        let context = self.context!
        let complete: Bool
        do {
            complete = try exchange.relay.receive(
                buffer, allocator: allocator, retry: { status in self.claimRetry(exchange, status: status) }
            ) { bytes in
                context.write(self.wrapOutboundOut(bytes), promise: nil)
            }
        } catch {
            runtime.health.exchangeFailed(exchange.upstream, .malformed, now: now)
            if exchange.relay.headSent { closeClient(.cutOff) } else { answerForExchange(exchange, .upstreamError) }
            return
        }
        if exchange.relay.headSent { exchange.lifecycle.responseHeadSent() }
        guard complete else { return }
        if exchange.relay.discardedForRetry {
            retryElsewhere(exchange)
        } else {
            completeExchange(exchange)
        }
    }

    /// Whether a final response with `status` may be dropped and the request sent to
    /// another upstream instead: an idempotent request with no body sent, fully read,
    /// answered 502/503/504 by the upstream, not retried before, with another upstream
    /// to go to and a place in the retry budget (docs/ARCHITECTURE.md, "Retries").
    /// Fluxgate's own sheds never reach here: they are not upstream responses.
    private func claimRetry(_ exchange: Exchange, status: Int) -> Bool {
        guard (502...504).contains(status), exchange.isIdempotent, !exchange.retriedOnStatus, exchange.requestComplete,
            !exchange.bodyForwarded, exchange.pending.isEmpty, exchange.bodyBytes == 0,
            let next = runtime.failover(&routing, after: exchange.upstream, tried: exchange.tried + [exchange.upstream]),
            runtime.startRetry()
        else { return false }
        exchange.retryTarget = next
        exchange.holdsRetry = true
        return true
    }

    /// The upstream's 502/503/504 was claimed by ``claimRetry(_:status:)``: counted
    /// against that upstream's health, its connection closed (its body is unread), and
    /// the request started again on the chosen upstream with a fresh relay.
    private func retryElsewhere(_ exchange: Exchange) {
        let status = exchange.relay.status ?? 502
        runtime.health.exchangeFailed(exchange.upstream, .status(status), now: now)
        abortUpstream(exchange)
        exchange.tried.append(exchange.upstream)
        exchange.retriedOnStatus = true
        exchange.upstream = exchange.retryTarget!
        exchange.retryTarget = nil
        exchange.relay = exchange.relay.restarted()
        exchange.upstreamHead = RequestSerializer.head(
            exchange.clientHead, policy: exchange.policy, facts: exchange.facts, requestID: exchange.requestID,
            clientAddress: clientAddress, upstreamAuthority: runtime.authorities[exchange.upstream], allocator: allocator)
        startUpstream(exchange)
    }

    private func completeExchange(_ exchange: Exchange) {
        if let status = exchange.relay.status, status >= 500 {
            runtime.health.exchangeFailed(exchange.upstream, .status(status), now: now)
        } else {
            runtime.health.exchangeSucceeded(exchange.upstream)
        }
        exchange.headerDeadline = nil
        if let connection = exchange.connection {
            exchange.connection = nil
            if exchange.requestComplete && exchange.relay.upstreamReusable {
                pool.release(connection)
            } else {
                connection.close()
            }
        }
        end(exchange, .proxied(status: exchange.relay.status ?? 0))
        finishResponse(keepAlive: exchange.relay.clientKeepAlive && exchange.requestComplete)
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeReadsIfPossible() }
    }

    func upstreamClosed(error: (any Error)?) {
        guard case .active(let exchange) = state else { return }
        let connection = exchange.connection
        exchange.connection = nil
        if error == nil && exchange.relay.upstreamClosed() {
            completeExchange(exchange)
            return
        }
        if exchange.relay.headSent {
            runtime.health.exchangeFailed(exchange.upstream, .reset, now: now)
            closeClient(.cutOff)
            return
        }
        // A reused keep-alive connection that the upstream closed just as it was picked:
        // nothing was answered and (without a body) nothing is lost by sending again.
        if let connection, connection.servedRequests > 0, !exchange.bodyForwarded, !exchange.retriedStaleConnection,
            exchange.isIdempotent
        {
            exchange.retriedStaleConnection = true
            exchange.headerDeadline = nil
            exchange.lifecycle.connecting(upstream: exchange.upstream)
            connectFresh(exchange)
            return
        }
        runtime.health.exchangeFailed(exchange.upstream, .reset, now: now)
        answerForExchange(exchange, .upstreamError)
    }
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}
