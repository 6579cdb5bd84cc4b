import FluxgateCore
import NIOConcurrencyHelpers
import NIOCore

/// The client side of the data path: one per client connection, reading the
/// client's bytes itself with the gateway's strict request parser
/// (``RequestHeadParser``, differential-tested and fuzzed against llhttp).
///
/// For each request it picks an upstream, borrows a keep-alive connection from its
/// event loop's ``UpstreamPool``, writes the request as bytes (``RequestSerializer``)
/// and relays the response as bytes (``ResponseRelay``): no decoding into
/// `HTTPRequestHead`/`HTTPHeaders` values and re-encoding, which is what separates a
/// proxy at nginx's speed from one at half of it (docs/ARCHITECTURE.md).
///
/// Input is bytes: a request head is parsed in place in the receive buffer and its
/// lines copied into the upstream head; a body is cut out of the same buffer by a
/// ``BodyFramer``. Pipelined requests are simply bytes not parsed yet: they wait in
/// the receive buffer (bounded) until the current answer is out. Between requests the
/// handler holds no buffer at all.
///
/// Backpressure: client reads are held back while the upstream connection is not
/// writable (or not yet connected); the upstream connection holds its reads while
/// this channel is not writable. Every failure becomes an answer (400/413/431/502/504)
/// unless the response had already started, when the only honest signal left is closing.
///
/// Files: this one holds the connection's state, request input, answers and channel
/// events; `ProxyHandler+Admission.swift` admission and the one place an exchange
/// ends (``ExchangeLifecycle``); `ProxyHandler+Upstream.swift` the attempts on
/// upstreams (connect, failover, response-head timer, relay, retry, completion).
/// With `parser: llhttp` (the fallback), ``LlhttpRequestBridge`` sits below and hands
/// over NIOHTTP1's parts encoded back into bytes.
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
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

    let runtime: GatewayRuntime
    let pool: any UpstreamConnector
    /// `timeouts.client_header` and `timeouts.idle` (nil: not enforced, as in unit
    /// tests of other behaviour); driven by this handler's one timer (``armTimer()``).
    var clientTimeouts: ClientConnectionTimeouts?
    /// The longest the timer sleeps: the shorter client timeout.
    let timerStride: TimeAmount
    /// This event loop's metrics, written at each exchange's end.
    let stats: LoopStats
    /// The configuration this connection last saw; refreshed between requests when a
    /// reload moved ``GatewayRuntime/settingsVersion``.
    var settings: GatewaySettings
    var maxBodyBytes: Int
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
    /// Buffers come from the loop's allocator (NIO's default, as every channel's).
    var allocator: ByteBufferAllocator { scratch.allocator }
    /// The peer's address: the key of its per-client connection count.
    var clientAddress: String
    /// Where this connection is counted until it ends (``releaseConnectionCount()``).
    var connectionLimits: NIOLockedValueBox<ConnectionLimits>?
    var readPending = false
    var upstreamNeedsFlush = false
    /// Client bytes not consumed yet: a head still arriving, body bytes not forwarded,
    /// pipelined requests. Nil when there are none — an idle connection holds no buffer.
    var receive: ByteBuffer?
    /// A head that arrived in part: parsing resumes from it when a line of it ends
    /// (a byte-at-a-time head costs linear time). Boxed and nil otherwise: heads are
    /// parsed into the loop's lent ``LoopScratch/takeRequestHead()``, so a connection
    /// between requests holds 8 bytes here instead of a 161-byte head.
    var partialHead: PartialRequestHead?
    /// The head being handled, during ``requestHead(_:)`` only (it lives in
    /// ``parseHead(_:)``'s frame).
    var headPointer: UnsafePointer<RequestHead>?
    var head: RequestHead {
        _read { yield headPointer!.pointee }
    }
    /// With `parser: llhttp`: NIOHTTP1 refused the input after the bytes received so far.
    var inputRefusal: RequestHeadParser.Refusal?
    /// The head of the request being read and its bytes, during ``requestHead(_:)``
    /// only: the upstream head is serialized from them once it is known to be needed.
    var headInProgress: UnsafeRawBufferPointer?
    var clientInputClosed = false
    /// ``processInput()`` is running.
    var processing = false
    var peerTrustCache: (version: Int, trusted: Bool)?
    /// An `Upgrade` (or CONNECT) request was read: nothing after it is parsed (the
    /// bytes that follow belong to another protocol, or to nobody), so the gateway stops
    /// reading and closes after the answer (`Connection: close` tells the client).
    var parsingStopped = false
    /// The connection's one timer (``armTimer()``): the deadline of its pending entry
    /// in the loop's ``LoopTimers``, and its place there.
    var timer = LoopTimer()
    /// The clock read once for the channel event being handled (``withEventTime(_:)``).
    var eventTime: MonotonicTime?
    static let crlf = ByteBuffer(string: "\r\n")
    /// Pipelined input held before reads pause, as HTTPServerPipelineHandler bounds it.
    static let maxQueuedBytes = 65_536

    /// The client connection is TLS (X-Forwarded-Proto: https).
    let https: Bool
    /// The most a TLS client connection reads at once (one TLS record; a power of two
    /// for ``CompactRecvAllocator``). Its writes are paced by ``TLSWritePacer``.
    static let tlsChunk = 16_384
    /// `timeouts.lingering_close`, read when the connection was accepted.
    var lingerTimeout: TimeAmount { .nanoseconds(settings.config.timeouts.lingeringClose.nanosecondsClamped) }

    /// Buffers shared with the other connections of this event loop (``LoopScratch``).
    let scratch: LoopScratch

    init(
        runtime: GatewayRuntime, pool: any UpstreamConnector, timeouts: ClientConnectionTimeouts?, stats: LoopStats = LoopStats(),
        scratch: LoopScratch? = nil, https: Bool = false, countedIn connectionLimits: NIOLockedValueBox<ConnectionLimits>? = nil,
        clientAddress: String = "unknown", revived: Bool = false
    ) {
        self.connectionLimits = connectionLimits
        self.clientAddress = clientAddress
        self.scratch = scratch ?? LoopScratch(eventLoop: pool.eventLoop)
        self.runtime = runtime
        self.https = https
        self.pool = pool
        self.eventLoop = pool.eventLoop
        self.clientTimeouts = timeouts
        self.timerStride = timeouts.map { .nanoseconds($0.shorterTimeout.nanosecondsClamped) } ?? .hours(1)
        self.stats = stats
        let settings = runtime.settings
        self.settings = settings
        self.maxBodyBytes = settings.maxBodyBytes
        self.routing = runtime.routing
        runtime.live.clientHandlers.born()
        // A connection rebuilt around a parked socket was counted when it was accepted.
        if !revived { runtime.live.clientHandlersCreated.born() }
    }

    /// Takes the current settings when a reload published new ones (one relaxed load
    /// when it did not).
    func refreshSettings() {
        guard runtime.settingsVersion.load(ordering: .relaxed) != settings.version else { return }
        settings = runtime.settings
        maxBodyBytes = settings.maxBodyBytes
    }

    /// Whether the peer is in `trusted_proxies`: decided once per connection and
    /// settings version (the peer does not change; a reload may change the list).
    var peerTrusted: Bool {
        if let cached = peerTrustCache, cached.version == settings.version { return cached.trusted }
        let trusted = settings.trustedProxies.containsAddress(clientAddress)
        peerTrustCache = (settings.version, trusted)
        return trusted
    }

    deinit {
        // A handler never added to its pipeline (the initializer threw) still counted its connection.
        releaseConnectionCount()
        runtime.live.clientHandlers.died()
    }

    /// The connection leaves `limits.max_connections` (and its per-client count)
    /// when it ends — a field here rather than a close-future callback per connection
    /// (two allocations, ~90 bytes held while it is open). Idempotent.
    func releaseConnectionCount() {
        guard let connectionLimits else { return }
        self.connectionLimits = nil
        let address = clientAddress
        connectionLimits.withLockedValue { $0.close(address: address) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { connectionOpened() }
    }

    /// NIO removes every handler when the channel closes; this is where the
    /// handler ↔ context cycle ends. A removal from a still-open pipeline (not done
    /// today) ends the exchange the same way a close does.
    func handlerRemoved(context: ChannelHandlerContext) {
        connectionGone()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if connectionLimits == nil, let ip = context.channel.remoteAddress?.ipAddress { clientAddress = ip }
        connectionOpened()
        context.fireChannelActive()
    }

    /// The request-head timeout starts with the connection (once: `handlerAdded` or
    /// `channelActive`, whichever finds it active first).
    func connectionOpened() {
        guard case .idle = state else { return }
        // Listed in the loop's slot table from the start, timer or not: the drain
        // reaches the loop's open connections there.
        timer.register(self, in: scratch.timers)
        if clientTimeouts?.phase == .closed {
            let now = MonotonicTime(eventLoop.now)
            clientTimeoutEvent { $0.connectionOpened(now: now) }
        }
        // Accepted as the listener closed for a drain: served as if drained.
        if runtime.draining { drain() }
    }

    // MARK: Client → upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .closing, .tunnelled: return
        default: break
        }
        withEventTime { clientBytes(unwrapInboundIn(data)) }
    }

    func clientBytes(_ data: ByteBuffer) {
        var bytes = data
        if clientTimeouts?.phase == .idle {
            let now = self.now
            clientTimeoutEvent { $0.bytesReceived(now: now) }
        }
        let lineEnded = partialHead != nil && bytes.withUnsafeReadableBytes { $0.contains(0x0A) }
        if receive == nil {
            receive = bytes
        } else {
            receive!.writeBuffer(&bytes)
            scratch.keepReceiveBuffer(data)  // copied: lent back to the loop
        }
        // A head still arriving is parsed again only once a line of it ended (or it
        // passed the limit): linear in its length however it is cut into reads.
        if partialHead != nil && !lineEnded && receive!.readableBytes <= settings.maxHeaderBytes + 64 { return }
        processInput()
    }

    /// Whether input can be handled now: between requests, or while the current
    /// request is still arriving. The next request waits for this one's answer.
    var acceptsInput: Bool {
        switch state {
        case .idle: true
        case .active(let exchange): !exchange.requestComplete
        case .closing, .tunnelled: false
        }
    }

    /// Drops the receive buffer, lending it back to the loop for its next read
    /// (``CompactRecvAllocator``): an idle connection holds none.
    func releaseReceive() {
        if let buffer = receive.take() { scratch.keepReceiveBuffer(buffer) }
    }

    /// Parses and forwards what the receive buffer holds, as far as the state allows.
    /// Not re-entered: an answer given synchronously while a head is being handled
    /// (a refused connect, a shed) finishes inside it, and the outer loop goes on.
    func processInput() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while true {
            switch state {
            case .closing, .tunnelled:
                releaseReceive()
                return
            case .idle:
                guard !parsingStopped, let input = receive, input.readableBytes > 0 else {
                    releaseReceive()
                    if let refusal = inputRefusal {
                        inputRefused(refusal)
                    } else if clientInputClosed {
                        closeClient()
                    }
                    return
                }
                guard parseHead(input) else { return }
            case .active(let exchange):
                guard !exchange.requestComplete, let input = receive, input.readableBytes > 0 else {
                    if receive?.readableBytes == 0 { releaseReceive() }
                    if let refusal = inputRefusal, !exchange.requestComplete { inputRefused(refusal) }
                    return
                }
                guard consumeBody(input, exchange) else { return }
            }
        }
    }

    /// One head from the start of `input`; false when it is not complete (or was refused).
    func parseHead(_ input: ByteBuffer) -> Bool {
        let limit = settings.maxHeaderBytes
        // Taken, not referenced: a parse nested in another connection's would find the
        // loop's head gone and use a new one, never share it.
        let box = partialHead.take()
        var head = box.map { box in
            var held = RequestHead()
            swap(&held, &box.head)
            return held
        } ?? scratch.takeRequestHead()
        let outcome = input.withUnsafeReadableBytes { RequestHeadParser.parse($0, maxLength: limit, into: &head) }
        switch outcome {
        case .incomplete:
            let kept = box ?? PartialRequestHead()
            swap(&kept.head, &head)
            partialHead = kept
            if let refusal = inputRefusal { inputRefused(refusal) }
            return false
        case .invalid(let refusal):
            head.reset()
            scratch.keepRequestHead(head)
            inputRefused(refusal)
            return false
        case .complete:
            if head.fields.count > settings.maxHeaderCount {
                // Counted after the parse: the head is already bounded by its bytes, and
                // the parser stays exactly as strict as llhttp, which has no count limit.
                head.reset()
                scratch.keepRequestHead(head)
                inputRefused(.tooManyFields)
                return false
            }
            let length = head.length
            withUnsafePointer(to: &head) { pointer in
                headPointer = pointer
                defer { headPointer = nil }
                input.withUnsafeReadableBytes { bytes in
                    requestHead(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
                }
            }
            head.reset()
            scratch.keepRequestHead(head)
            receive?.moveReaderIndex(forwardBy: length)
            return true
        }
    }

    /// Body bytes from the start of `input`, as far as this request's framing goes;
    /// false when nothing more can be done until more bytes arrive.
    func consumeBody(_ input: ByteBuffer, _ exchange: Exchange) -> Bool {
        var framer = exchange.bodyFramer
        let base = input.readerIndex
        let consumed: Int
        do {
            consumed = try input.withUnsafeReadableBytes { bytes in
                try framer.consume(
                    bytes,
                    payload: { range in
                        requestBody(input.getSlice(at: base + range.lowerBound, length: range.count)!)
                    },
                    trailer: { range in
                        var section = exchange.trailerSection ?? allocator.buffer(capacity: range.count)
                        section.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
                        exchange.trailerSection = section
                    })
            }
        } catch {
            exchange.bodyFramer = framer
            inputRefused(.malformed("invalid chunked body: \(error)"))
            return false
        }
        exchange.bodyFramer = framer
        guard case .active(let current) = state, current === exchange else { return true }
        receive?.moveReaderIndex(forwardBy: consumed)
        if framer.isComplete {
            requestEnd()
            return true
        }
        if receive?.readableBytes == 0 { releaseReceive() }
        return false
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if upstreamNeedsFlush, case .active(let exchange) = state {
            upstreamNeedsFlush = false
            exchange.connection?.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Pipelined bytes waiting behind the current request.
    var queuedBytes: Int {
        if case .active(let exchange) = state, !exchange.requestComplete { return 0 }
        return receive?.readableBytes ?? 0
    }

    func requestHead(_ bytes: UnsafeRawBufferPointer) {
        guard case .idle = state else { return }
        clientTimeoutEvent { $0.requestHeadReceived() }
        refreshSettings()
        let facts = RequestSerializer.facts(head, bytes)
        let requestID = facts.requestID ?? pool.nextRequestID()
        let http10 = head.isHTTP10
        let now = self.now
        let target = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[head.target]), as: UTF8.self)
        let exchange = Exchange(
            method: head.method, target: target, framing: head.framing, facts: facts, clientHTTP10: http10,
            clientKeepAlive: head.keepsAlive && !draining, requestID: requestID, live: runtime.live, now: now,
            limits: settings.exchangeLimits)
        state = .active(exchange)
        if exchange.bodyFramer.isComplete {
            // No body: the request is whole with its head.
            exchange.requestComplete = true
            exchange.relay.requestComplete = true
            exchange.deadlines.clientBodyNotWanted()
        }
        exchange.client = clientAddress
        if !settings.trustedProxies.isEmpty, peerTrusted {
            exchange.peerTrusted = true
            let forwarded = head.fields.filter { $0.kind == .forwardedFor }.map {
                Substring(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[$0.value]), as: UTF8.self))
            }
            exchange.client = settings.trustedProxies.clientAddress(peer: clientAddress, peerTrusted: true, forwardedFor: forwarded)
        }
        if settings.perClientLimited { exchange.clientKey = clientKey(exchange, bytes) }
        if facts.upgradeRequested || head.method == .CONNECT {
            parsingStopped = true
            exchange.relay.closeAfterResponse()
            if facts.upgradeRequested, head.method == .GET, settings.maxTunnels > 0, runtime.reserveTunnel(max: settings.maxTunnels) {
                // Forwarded with its Upgrade; a 101 turns the connection into a tunnel.
                exchange.tunnelReserved = true
                exchange.relay.upgradeAllowed = true
            }
        }
        if let refusal = refusal(exchange, facts: facts, http10: http10) {
            exchange.relay.closeAfterResponse()
            answerForExchange(exchange, refusal)
            return
        }
        if let length = facts.contentLength, length > maxBodyBytes {
            exchange.relay.closeAfterResponse()
            answerForExchange(exchange, .bodyTooLarge)
            return
        }
        headInProgress = bytes
        defer { headInProgress = nil }
        if (facts.contentLength ?? 0) > 0 || facts.chunked {
            exchange.deadlines.clientBodyProgress(now: now)
            armExchangeTimer(exchange)
            if settings.requestBufferBytes > 0 && (facts.contentLength ?? 0) <= settings.requestBufferBytes {
                // Read the body whole first: a slow uploader holds no admission slot.
                exchange.buffering = true
                prepareUpstreamHead(exchange)
                if facts.expectsContinue && !http10 { sendContinue(exchange) }
                return
            }
        }
        admit(exchange)
    }

    /// Serializes the upstream head while the client's head bytes are at hand (during
    /// ``requestHead(_:)``): when the request is admitted, queued or buffered — never
    /// for a shed or refused one.
    func prepareUpstreamHead(_ exchange: Exchange) {
        guard exchange.upstreamHead.writerIndex == 0, let bytes = headInProgress else { return }
        let upgrade = exchange.tunnelReserved ? exchange.facts.upgrade : nil
        let capacity = RequestSerializer.headCapacity(head, requestID: exchange.requestID, clientAddress: clientAddress, upgrade: upgrade)
        exchange.upstreamHead = RequestSerializer.head(
            head, bytes: bytes, requestID: exchange.requestID, clientAddress: clientAddress,
            keepForwardedFor: exchange.peerTrusted, underscores: settings.underscoresInHeaders, https: https, upgrade: upgrade,
            into: scratch.takeUpstreamHead(capacity: capacity, allocator: allocator))
    }

    /// The per-client rate-limit key: the configured header's value, else the address.
    /// Header keys and address keys live in separate namespaces (``RateLimitKey``).
    func clientKey(_ exchange: Exchange, _ bytes: UnsafeRawBufferPointer) -> String {
        if let name = settings.clientKeyHeader {
            // Any field may be the key (as before: also one the proxy treats specially);
            // the first occurrence counts.
            for field in head.fields where HeaderName.equalsLowercase(UnsafeRawBufferPointer(rebasing: bytes[field.name]), name) {
                return RateLimitKey.header(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[field.value]), as: UTF8.self))
            }
        }
        return RateLimitKey.address(exchange.client)
    }

    /// Requests refused before admission, on their head alone (docs/SECURITY.md).
    func refusal(_ exchange: Exchange, facts: RequestSerializer.Facts, http10: Bool) -> GatewayAnswer? {
        if exchange.method == .CONNECT { return .methodNotAllowed }
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0, and the
        // authority of an absolute-form target wins — they must agree.
        if facts.hostCount > 1 || (!http10 && facts.hostCount == 0) { return .badHost }
        if let authority = RequestTarget.absoluteAuthority(exchange.target), let host = facts.host,
            authority.lowercased() != host.trimmingSpaces().lowercased()
        {
            return .badHost
        }
        if RequestTarget.climbsAboveRoot(exchange.target) { return .badPath }
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

    func requestEnd() {
        guard case .active(let exchange) = state else { return }
        exchange.requestComplete = true
        exchange.relay.requestComplete = true
        exchange.deadlines.clientBodyNotWanted()
        if exchange.chunkedBody {
            sendUpstream(
                RequestSerializer.lastChunk(
                    trailerSection: exchange.trailerSection, underscores: settings.underscoresInHeaders, allocator: allocator),
                exchange)
            exchange.trailerSection = nil
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
        var bytes = scratch.takeAnswer(capacity: 512, allocator: allocator)
        runtime.responses.response(
            kind, requestID: exchange.requestID, close: !keepAlive, http10: exchange.clientHTTP10,
            includeBody: !exchange.isHeadRequest, into: &bytes)
        exchange.bytesSent += bytes.readableBytes
        end(exchange, .gatewayAnswer(status: Int(kind.status.code)))
        scratch.keepAnswer(bytes)
        context.write(wrapOutboundOut(bytes), promise: nil)
        finishResponse(keepAlive: keepAlive)
    }

    /// An answer outside any exchange (a request that could not be parsed).
    func answer(_ kind: GatewayAnswer, requestID: RequestID?, http10: Bool, close: Bool, isHead: Bool) {
        var bytes = scratch.takeAnswer(capacity: 512, allocator: allocator)
        runtime.responses.response(kind, requestID: requestID, close: close, http10: http10, includeBody: !isHead, into: &bytes)
        scratch.keepAnswer(bytes)
        context.write(wrapOutboundOut(bytes), promise: nil)
        finishResponse(keepAlive: !close)
    }

    /// The answer to the current request was written (the exchange, if any, has already
    /// ended): keep the connection for the next request, or close it.
    func finishResponse(keepAlive: Bool) {
        guard keepAlive && !clientInputClosed && !draining else {
            state = .closing
            // A lingering close: request bytes may still be arriving (a refused body, a
            // pipelined request), and closing on unread input would reset the answer away.
            // The empty write completes once everything before it is on the wire; a
            // client that stops taking the rest is closed after `timeouts.client_send`.
            let send = TimeAmount.nanoseconds(settings.config.timeouts.clientSend.nanosecondsClamped)
            context.writeThenLingeringClose(
                allocator.buffer(capacity: 0), timeout: lingerTimeout, writeTimeout: max(send, lingerTimeout, .seconds(5)))
            return
        }
        state = .idle
        context.flush()
        let now = self.now
        clientTimeoutEvent { $0.responseCompleted(now: now) }
        if parsingStopped, let refusal = inputRefusal {
            parsingStopped = false
            inputRefused(refusal)
            return
        }
        processInput()
        resumeReadsIfPossible()
    }

    /// The input cannot be read on from here (a malformed or oversized head, a broken
    /// chunked body, or NIOHTTP1's refusal with `parser: llhttp`): answer 400/431 unless
    /// the current response already started, in which case closing is the only signal.
    func inputRefused(_ refusal: RequestHeadParser.Refusal) {
        inputRefusal = nil
        releaseReceive()
        let kind: GatewayAnswer =
            switch refusal {
            case .tooLarge: .headersTooLarge
            case .tooManyFields: .tooManyHeaders
            case .malformed: .badRequest
            }
        let counted: HeadRefusal = kind == .badRequest ? .badRequest : .headersTooLarge
        switch state {
        case .idle:
            stats.traffic.refused(counted)
            answer(kind, requestID: nil, http10: false, close: true, isHead: false)
        case .active(let exchange):
            if exchange.relay.headSent {
                closeClient(.cutOff)
            } else if !exchange.requestComplete {
                stats.traffic.refused(counted)
                exchange.relay.closeAfterResponse()
                answerForExchange(exchange, kind)
            } else {
                // A later request was malformed: answered in order, after this one.
                inputRefusal = refusal
                parsingStopped = true
            }
        case .closing, .tunnelled:
            break
        }
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
        if case .active(let exchange) = state {
            if !exchange.requestComplete {
                if exchange.buffering { return true }
                guard let connection = exchange.connection, connection.isWritable else { return false }
                return true
            }
            // The request is read: what follows is pipelined, or belongs to another protocol.
            if parsingStopped { return false }
        }
        let queued = queuedBytes
        if queued >= Self.maxQueuedBytes { return false }
        return queued == 0 || pipelinedHeads(limit: settings.maxPipelined) < settings.maxPipelined
    }

    /// Complete request heads among the pipelined bytes, counted up to `limit`
    /// (`limits.max_pipelined`): each ends at a blank line. A body holding one counts
    /// too, which only pauses reads sooner. Scanned only while a client pipelines.
    func pipelinedHeads(limit: Int) -> Int {
        guard let receive else { return 0 }
        return receive.withUnsafeReadableBytes { bytes in
            var count = 0
            var from = 0
            while count < limit, let end = ResponseHeadParser.headEnd(in: UnsafeRawBufferPointer(rebasing: bytes[from...])) {
                count += 1
                from += end
            }
            return count
        }
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
            if case .idle = state { processInput() }
            switch state {
            case .idle:
                // A head cut short by the close: nobody is left to answer.
                closeClient()
            case .active(let exchange) where !exchange.requestComplete:
                // The body can never complete: the client is gone (its upstream
                // connection closes, never reused).
                closeClient(.clientGone)
            case .active(let exchange) where settings.abortOnClientClose && !exchange.lifecycle.responseStarted:
                // `abort_on_client_close`: a FIN before the answer started almost always
                // means the client gave up (a full close looks the same as a half-close).
                // Its queue place, or its slot and upstream connection, are given back
                // now instead of when the upstream answers or times out.
                closeClient(.clientGone)
            default:
                break
            }
            return
        }
        if let refused = event as? LlhttpRequestBridge.InputRefused {
            // With `parser: llhttp`: everything before this point was handed over.
            inputRefusal = refused.refusal
            processInput()
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
        _ = clientTimeouts?.connectionClosed()
        stopTimer()
        releaseConnectionCount()
        releaseReceive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeClient()
    }
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}

/// A request head received in part, kept by its connection until the rest arrives.
final class PartialRequestHead {
    var head = RequestHead()
}

@available(*, unavailable)
extension PartialRequestHead: Sendable {}
