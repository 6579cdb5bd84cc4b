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
///
/// Files: this one holds the connection's state, request input, answers and channel
/// events; `ProxyHandler+Admission.swift` admission and the one place an exchange
/// ends (``ExchangeLifecycle``); `ProxyHandler+Upstream.swift` the attempts on
/// upstreams (connect, failover, response-head timer, relay, retry, completion).
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State {
        case idle
        case active(Exchange)
        /// A final answer went out; the connection closes once it is written.
        case closing
        /// The upstream switched protocols: a ``TunnelHandler`` took the connection over.
        case tunnelled
    }

    /// Input that arrived while an earlier request was still being answered.
    enum Queued {
        case part(HTTPServerRequestPart)
        case parserError(any Error)
    }

    let runtime: GatewayRuntime
    let pool: any UpstreamConnector
    let timeouts: ClientTimeoutHandler?
    /// This event loop's metrics, written at each exchange's end.
    let stats: LoopStats
    /// The configuration this connection last saw; refreshed between requests when a
    /// reload moved ``GatewayRuntime/settingsVersion``.
    var settings: GatewaySettings
    var maxBodyBytes: Int
    /// Held here: reading `runtime.admission` per request copied the whole struct
    /// (retains of its arrays and dictionary, seen in the profile).
    var admission: AdmissionConfig
    /// A graceful drain began: the current answer is the last on this connection.
    var draining = false
    /// The ready upstreams as this connection last saw them.
    var routing: GatewayRuntime.Routing
    var state = State.idle
    /// The handler's own context, held only between `handlerAdded` and
    /// `handlerRemoved`: the context owns this handler, so holding it longer is a
    /// retain cycle that keeps the whole connection alive after it closed
    /// (docs/ARCHITECTURE.md, "Who owns whom"). Timers and admission callbacks that
    /// may still arrive after the close check `state` first and use ``eventLoop``.
    var context: ChannelHandlerContext!
    /// The connection's event loop, which is also its pool's.
    let eventLoop: any EventLoop
    var allocator = ByteBufferAllocator()
    var clientAddress = "unknown"
    var readPending = false
    var upstreamNeedsFlush = false
    /// A `Deque` allocates nothing until something is queued: most connections never pipeline.
    var queue = Deque<Queued>()
    var queuedBytes = 0
    /// Request heads waiting in `queue` (bounded by `limits.max_pipelined`).
    var queuedHeads = 0
    var clientInputClosed = false
    var peerTrustCache: (version: Int, trusted: Bool)?
    /// An `Upgrade` (or CONNECT) request was read: NIOHTTP1's decoder parses nothing
    /// more on this connection, so the gateway stops reading it and closes after the
    /// answer (`Connection: close` tells the client that nothing after it was served).
    var parsingStopped = false
    /// One timer per client connection for every exchange timeout (``ExchangeDeadlines``).
    var exchangeTimer: Scheduled<Void>?
    var exchangeTimerDeadline: NIODeadline?
    static let crlf = ByteBuffer(string: "\r\n")
    /// Pipelined input held before reads pause, as HTTPServerPipelineHandler bounds it.
    /// Heads count by their size (``queuedSize(_:)``), not as a token amount.
    static let maxQueuedBytes = 65_536

    /// The client connection is TLS (X-Forwarded-Proto: https).
    let https: Bool

    init(
        runtime: GatewayRuntime, pool: any UpstreamConnector, timeouts: ClientTimeoutHandler?, stats: LoopStats = LoopStats(),
        https: Bool = false
    ) {
        self.runtime = runtime
        self.https = https
        self.pool = pool
        self.eventLoop = pool.eventLoop
        self.timeouts = timeouts
        self.stats = stats
        let settings = runtime.settings
        self.settings = settings
        self.maxBodyBytes = settings.maxBodyBytes
        self.admission = settings.admission
        self.routing = runtime.routing
        runtime.live.clientHandlers.born()
        runtime.live.clientHandlersCreated.born()
    }

    /// Takes the current settings when a reload published new ones (one relaxed load
    /// when it did not).
    func refreshSettings() {
        guard runtime.settingsVersion.load(ordering: .relaxed) != settings.version else { return }
        settings = runtime.settings
        maxBodyBytes = settings.maxBodyBytes
        admission = settings.admission
    }

    /// Whether the peer is in `trusted_proxies`: decided once per connection and
    /// settings version (the peer does not change; a reload may change the list).
    var peerTrusted: Bool {
        if let cached = peerTrustCache, cached.version == settings.version { return cached.trusted }
        let trusted = settings.trustedProxies.containsAddress(clientAddress)
        peerTrustCache = (settings.version, trusted)
        return trusted
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
        switch state {
        case .closing, .tunnelled: return
        default: break
        }
        if queue.isEmpty && acceptsInput {
            handle(part)
        } else {
            enqueue(.part(part))
            drainQueue()
        }
    }

    /// Whether input can be handled now: between requests, or while the current
    /// request is still arriving. Parts of the next request wait for this one's answer.
    var acceptsInput: Bool {
        switch state {
        case .idle: true
        case .active(let exchange): !exchange.requestComplete
        case .closing, .tunnelled: false
        }
    }

    func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head): requestHead(head)
        case .body(let buffer): requestBody(buffer)
        case .end(let trailers): requestEnd(trailers)
        }
    }

    func enqueue(_ item: Queued) {
        queuedBytes += Self.queuedSize(item)
        if case .part(.head) = item { queuedHeads += 1 }
        queue.append(item)
    }

    /// What a queued item holds in memory, roughly: a head's target and fields (plus
    /// per-field overhead), a body part's bytes.
    static func queuedSize(_ item: Queued) -> Int {
        switch item {
        case .part(.head(let head)):
            var size = 64 + head.uri.utf8.count
            for (name, value) in head.headers { size += 32 + name.utf8.count + value.utf8.count }
            return size
        case .part(.body(let buffer)):
            return 64 + buffer.readableBytes
        case .part(.end), .parserError:
            return 64
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if upstreamNeedsFlush, case .active(let exchange) = state {
            upstreamNeedsFlush = false
            exchange.connection?.flush()
        }
        context.fireChannelReadComplete()
    }

    func requestHead(_ head: HTTPRequestHead) {
        guard case .idle = state else { return }
        timeouts?.requestHeadReceived(context: context)
        refreshSettings()
        let (facts, policy) = RequestSerializer.inspect(head.headers)
        let requestID = facts.requestID ?? pool.nextRequestID()
        let http10 = head.version.major == 1 && head.version.minor == 0
        let now = self.now
        let exchange = Exchange(
            clientHead: head, facts: facts, policy: policy, clientHTTP10: http10,
            clientKeepAlive: policy.keepsAlive(http10: http10) && !draining, requestID: requestID, live: runtime.live, now: now,
            limits: settings.exchangeLimits)
        state = .active(exchange)
        exchange.client = clientAddress
        if !settings.trustedProxies.isEmpty, peerTrusted {
            exchange.peerTrusted = true
            let forwarded = head.headers[canonicalForm: "x-forwarded-for"]
            exchange.client = settings.trustedProxies.clientAddress(peer: clientAddress, peerTrusted: true, forwardedFor: forwarded)
        }
        if facts.upgrade || head.method == .CONNECT {
            parsingStopped = true
            exchange.relay.closeAfterResponse()
            if facts.upgrade, head.method == .GET, settings.maxTunnels > 0, runtime.reserveTunnel(max: settings.maxTunnels) {
                // Forwarded with its Upgrade; a 101 turns the connection into a tunnel.
                exchange.tunnelReserved = true
                exchange.relay.upgradeAllowed = true
            }
        }
        if let refusal = refusal(head, facts: facts, http10: http10) {
            exchange.relay.closeAfterResponse()
            answerForExchange(exchange, refusal)
            return
        }
        if let length = facts.contentLength, length > maxBodyBytes {
            exchange.relay.closeAfterResponse()
            answerForExchange(exchange, .bodyTooLarge)
            return
        }
        if (facts.contentLength ?? 0) > 0 || facts.chunked {
            exchange.deadlines.clientBodyProgress(now: now)
            armExchangeTimer(exchange)
            if settings.requestBufferBytes > 0 && (facts.contentLength ?? 0) <= settings.requestBufferBytes {
                // Read the body whole first: a slow uploader holds no admission slot.
                exchange.buffering = true
                if facts.expectsContinue && !http10 { sendContinue(exchange) }
                return
            }
        }
        admit(exchange)
    }

    /// Requests refused before admission, on their head alone (docs/SECURITY.md).
    func refusal(_ head: HTTPRequestHead, facts: RequestSerializer.Facts, http10: Bool) -> GatewayAnswer? {
        if head.method == .CONNECT { return .methodNotAllowed }
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0, and the
        // authority of an absolute-form target wins — they must agree.
        if facts.hostCount > 1 || (!http10 && facts.hostCount == 0) { return .badHost }
        if let authority = RequestTarget.absoluteAuthority(head.uri), let host = facts.host,
            authority.lowercased() != host.trimmingSpaces().lowercased()
        {
            return .badHost
        }
        if RequestTarget.climbsAboveRoot(head.uri) { return .badPath }
        return nil
    }

    /// `100 Continue`, once per request (RFC 9110 §10.1.1).
    func sendContinue(_ exchange: Exchange) {
        guard !exchange.continueSent else { return }
        exchange.continueSent = true
        context.writeAndFlush(wrapOutboundOut(GatewayResponses.continueResponse), promise: nil)
    }

    func requestBody(_ buffer: ByteBuffer) {
        guard case .active(let exchange) = state else { return }
        exchange.bodyBytes += buffer.readableBytes
        if exchange.bodyBytes > maxBodyBytes {
            if exchange.relay.headSent {
                closeClient(.cutOff)
            } else {
                exchange.relay.closeAfterResponse()
                answerForExchange(exchange, .bodyTooLarge)
            }
            return
        }
        exchange.deadlines.clientBodyProgress(now: now)
        if exchange.chunkedBody {
            sendUpstream(RequestSerializer.chunkHeader(buffer.readableBytes, allocator: allocator), exchange)
            sendUpstream(buffer, exchange)
            sendUpstream(Self.crlf, exchange)
        } else {
            sendUpstream(buffer, exchange)
        }
        if exchange.buffering && exchange.bodyBytes > settings.requestBufferBytes {
            // A chunked body longer than the buffer: admitted now, the rest streams.
            exchange.buffering = false
            admit(exchange)
        }
    }

    func requestEnd(_ trailers: HTTPHeaders?) {
        guard case .active(let exchange) = state else { return }
        exchange.requestComplete = true
        exchange.relay.requestComplete = true
        exchange.deadlines.clientBodyNotWanted()
        if exchange.chunkedBody {
            sendUpstream(
                RequestSerializer.lastChunk(trailers: trailers, underscores: settings.underscoresInHeaders, allocator: allocator), exchange)
        }
        if exchange.buffering {
            exchange.buffering = false
            admit(exchange)
            return
        }
        if let connection = exchange.connection {
            connection.flush()
            upstreamNeedsFlush = false
            requestSent(exchange)
        }
    }

    /// Body bytes (and chunk framing) for the upstream: written now, or held until connected.
    func sendUpstream(_ bytes: ByteBuffer, _ exchange: Exchange) {
        if let connection = exchange.connection {
            connection.write(bytes)
            upstreamNeedsFlush = true
            exchange.bodyForwarded = true
        } else {
            exchange.pending.append(bytes)
        }
    }


    // MARK: Answers and completion

    /// Answers an active exchange with the gateway's own response.
    func answerForExchange(_ exchange: Exchange, _ kind: GatewayAnswer) {
        let keepAlive = exchange.relay.clientKeepAlive && exchange.requestComplete && !draining
        let bytes = runtime.responses.response(
            kind, requestID: exchange.requestID, close: !keepAlive, http10: exchange.clientHTTP10,
            includeBody: !exchange.isHeadRequest, allocator: allocator)
        exchange.bytesSent += bytes.readableBytes
        end(exchange, .gatewayAnswer(status: Int(kind.status.code)))
        context.write(wrapOutboundOut(bytes), promise: nil)
        finishResponse(keepAlive: keepAlive)
    }

    /// An answer outside any exchange (a request that could not be parsed).
    func answer(_ kind: GatewayAnswer, requestID: RequestID?, http10: Bool, close: Bool, isHead: Bool) {
        let bytes = runtime.responses.response(
            kind, requestID: requestID, close: close, http10: http10, includeBody: !isHead, allocator: allocator)
        context.write(wrapOutboundOut(bytes), promise: nil)
        finishResponse(keepAlive: !close)
    }

    /// The answer to the current request was written (the exchange, if any, has already
    /// ended): keep the connection for the next request, or close it.
    func finishResponse(keepAlive: Bool) {
        guard keepAlive && !clientInputClosed && !draining else {
            state = .closing
            let context = self.context!
            // A lingering close: request bytes may still be arriving (a refused body, a
            // pipelined request), and closing on unread input would reset the answer away.
            context.writeAndFlush(wrapOutboundOut(allocator.buffer(capacity: 0))).whenComplete { _ in
                context.lingeringClose()
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
    func drainQueue() {
        while acceptsInput, let item = queue.popFirst() {
            switch item {
            case .part(let part):
                queuedBytes -= Self.queuedSize(item)
                if case .head = part { queuedHeads -= 1 }
                handle(part)
            case .parserError(let error):
                parserErrorReached(error)
            }
        }
        if case .idle = state, clientInputClosed, queue.isEmpty { closeClient() }
    }

    /// The decoder gave up at this point of the input: answer 400/431 unless the
    /// current response already started, in which case closing is the only signal.
    func parserErrorReached(_ error: any Error) {
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
        case .closing, .tunnelled:
            break
        }
    }

    func answerParserError(_ error: any Error) {
        let kind: GatewayAnswer = (error as? HTTPParserError) == .headerOverflow ? .headersTooLarge : .badRequest
        stats.traffic.refused(kind == .headersTooLarge ? .headersTooLarge : .badRequest)
        answer(kind, requestID: nil, http10: false, close: true, isHead: false)
    }

    /// Closes the client connection after what was already written (a truncated
    /// response still reaches the client, which sees its framing cut short). An exchange
    /// still running ends as `end`.
    func closeClient(_ end: ExchangeLifecycle.End = .clientGone) {
        if case .active(let exchange) = state { self.end(exchange, end) }
        state = .closing
        context.flush()
        context.close(promise: nil)
    }

    func resumeReadsIfPossible() {
        guard readPending, mayRead else { return }
        readPending = false
        if case .active(let exchange) = state, !exchange.requestComplete {
            // The body's clock restarts: the pause was the gateway's, not the client's.
            exchange.deadlines.clientBodyProgress(now: now)
        }
        context.read()
    }

    var mayRead: Bool {
        if queuedBytes > Self.maxQueuedBytes || queuedHeads >= settings.maxPipelined { return false }
        if case .active(let exchange) = state {
            if !exchange.requestComplete {
                if exchange.buffering { return true }
                guard let connection = exchange.connection, connection.isWritable else { return false }
            } else if parsingStopped {
                // The decoder would only buffer what follows, without bound.
                return false
            }
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
        if case .active(let exchange) = state {
            let writable = context.channel.isWritable
            exchange.deadlines.clientWritable(writable, now: now)
            if writable {
                exchange.connection?.resumeReads()
            } else {
                armExchangeTimer(exchange)
            }
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
        if event is ChannelShouldQuiesceEvent {
            drain()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Graceful drain: an idle connection closes now; a busy one answers its current
    /// request with `Connection: close` (when its head has not gone out yet) and closes
    /// after it. Pipelined requests behind it are not answered — the client sees the
    /// close and may send them elsewhere, as after any `Connection: close`.
    func drain() {
        draining = true
        switch state {
        case .idle:
            closeClient()
        case .active(let exchange):
            exchange.relay.closeAfterResponse()
        case .closing, .tunnelled:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionGone()
        context.fireChannelInactive()
    }

    /// The client connection is gone: give back what the exchange holds and stop
    /// every timer, so nothing scheduled keeps this handler alive. Idempotent.
    func connectionGone() {
        if case .active(let exchange) = state {
            // A client that leaves mid-request frees its upstream connection: closed, never reused.
            end(exchange, .clientGone)
        }
        state = .closing
        exchangeTimer?.cancel()
        exchangeTimer = nil
        queue.removeAll()
        queuedBytes = 0
        queuedHeads = 0
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder reports a head cut short by the close it sees as the connection
        // ends (a slowloris client answered 408 and closed): nobody is left to answer,
        // and the refusal was already counted.
        if !context.channel.isActive {
            closeClient()
            return
        }
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

@available(*, unavailable)
extension ProxyHandler: Sendable {}
