import FluxgateCore
import NIOConcurrencyHelpers
import NIOCore
import NIOTLS

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
/// Files: this one holds the connection's state and channel events;
/// `ProxyHandler+Request.swift` request input (heads, refusals, the upstream head);
/// `ProxyHandler+RequestBody.swift` request bodies (framing, the spool, backpressure);
/// `ProxyHandler+Answers.swift` the gateway's own answers, the end of a response and
/// read resumption; `ProxyHandler+Admission.swift` admission and the one place an exchange
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
    /// What every request reads of ``settings``, copied out whenever they are adopted: a
    /// read through the `settings` reference costs a retain and release of it each time
    /// (bench/refcount-callers.sh).
    var limits: RequestLimits
    struct RequestLimits {
        var maxBodyBytes: Int
        var maxHeaderBytes: Int
        var maxHeaderCount: Int
        var hasTrustedProxies: Bool

        init(_ settings: GatewaySettings) {
            maxBodyBytes = settings.maxBodyBytes
            maxHeaderBytes = settings.maxHeaderBytes
            maxHeaderCount = settings.maxHeaderCount
            hasTrustedProxies = !settings.trustedProxies.isEmpty
        }
    }
    /// A graceful drain began: the current answer is the last on this connection.
    var draining = false
    /// Requests carried and age, for `limits.max_requests_per_connection` and
    /// `timeouts.max_connection_age` (kept through parking).
    var reuse: ConnectionReuse
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
    /// Its entry in the loop's ``StalledClientBudget`` while it does not keep up.
    var stall: StalledClientBudget<ProxyHandler>.ID?
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
    var headPointer: UnsafeMutablePointer<RequestHead>?
    /// The client channel's writability as of its last `channelWritabilityChanged` (NIO
    /// fires it synchronously when the flag flips), read several times per request:
    /// `context.channel.isWritable` costs two retains and releases each time
    /// (bench/refcount-callers.sh, 2026-12-06). False once the handler is removed.
    var clientWritable = false
    var head: RequestHead {
        // An addressor rather than `_read { yield pointee }`. Neither stops the optimized
        // build from copying the head (a retain and release of its field list) where it is
        // passed whole to a borrowing parameter (bench/refcount-callers.sh, 2026-12-06;
        // still so with lexical lifetimes off): those calls lend it `inout` instead
        // (``ProxyHandler/withHead(_:)``).
        unsafeAddress { UnsafePointer(headPointer!) }
    }
    /// With `parser: llhttp`: NIOHTTP1 refused the input after the bytes received so far.
    var inputRefusal: RequestHeadParser.Refusal?
    /// The head of the request being read and its bytes, during ``requestHead(_:)``
    /// only: the upstream head is serialized from them once it is known to be needed.
    var headInProgress: UnsafeRawBufferPointer?
    /// The per-client rate-limit key of the last client address seen on this
    /// connection (``clientKey(_:_:)``).
    var addressKey: (address: String, key: ClientKey)?
    var clientInputClosed = false
    /// ``processInput()`` is running.
    var processing = false
    var peerTrustCache: (version: Int, trusted: Bool)?
    /// An `Upgrade` (or CONNECT) request was read: nothing after it is parsed (the
    /// bytes that follow belong to another protocol, or to nobody), so the gateway stops
    /// reading and closes after the answer (`Connection: close` tells the client).
    var parsingStopped = false
    /// The connection may leave NIO when idle (plain TCP with the gateway's own parser);
    /// otherwise it is only listed for eviction at the connection cap (``ProxyHandler/offerForParking(until:)``).
    let canPark: Bool
    /// Its place on the loop's idle list while listed (``unlistIdle()``).
    var idleListing: ParkingTable<ProxyHandler>.ID?
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
    /// `tls.verify_client` when the connection was accepted: whether its certificate is
    /// read after the handshake, and whether one is required.
    let clientCertificates: TLSConfig.ClientVerification
    /// The verified client certificate as `X-Forwarded-Client-Cert` carries it
    /// (``ForwardedClientCertificate``), nil without one.
    var forwardedClientCertificate: String?
    /// Its subject (RFC 4514), for the access log's `client_cert`.
    var clientCertificateSubject: String?
    /// `tls.verify_client: on` and the handshake brought no certificate: every request is
    /// answered 400 `client_certificate_required`.
    var clientCertificateMissing = false
    /// Its TLS handshake completed: answers can reach the client (before, a request-head
    /// timeout closes without one).
    var tlsEstablished = false
    /// The most a TLS client connection reads at once (one TLS record; a power of two
    /// for ``CompactRecvAllocator``). Its writes are paced by ``TLSWritePacer``.
    static let tlsChunk = 16_384
    /// `timeouts.lingering_close`, read when the connection was accepted.
    var lingerTimeout: TimeAmount { .nanoseconds(settings.config.timeouts.lingeringClose.nanosecondsClamped) }

    /// Buffers shared with the other connections of this event loop (``LoopScratch``).
    let scratch: LoopScratch

    /// `revived`: the connection is rebuilt around a parked socket, with its requests
    /// and age so far (it was counted as created when it was accepted).
    init(
        runtime: GatewayRuntime, pool: any UpstreamConnector, timeouts: ClientConnectionTimeouts?, stats: LoopStats = LoopStats(),
        scratch: LoopScratch? = nil, https: Bool = false, clientCertificates: TLSConfig.ClientVerification = .off,
        countedIn connectionLimits: NIOLockedValueBox<ConnectionLimits>? = nil, clientAddress: String = "unknown",
        revived: ConnectionReuse? = nil, canPark: Bool = true
    ) {
        self.reuse = revived ?? ConnectionReuse(openedAt: MonotonicTime(pool.eventLoop.now))
        self.canPark = canPark
        self.connectionLimits = connectionLimits
        self.clientAddress = clientAddress
        self.scratch = scratch ?? LoopScratch(eventLoop: pool.eventLoop)
        self.runtime = runtime
        self.https = https
        self.clientCertificates = https ? clientCertificates : .off
        self.pool = pool
        self.eventLoop = pool.eventLoop
        self.clientTimeouts = timeouts
        self.timerStride = timeouts.map { .nanoseconds($0.shorterTimeout.nanosecondsClamped) } ?? .hours(1)
        self.stats = stats
        let settings = runtime.settings
        self.settings = settings
        self.limits = RequestLimits(settings)
        self.routing = runtime.routing
        runtime.live.clientHandlers.born()
        // A connection rebuilt around a parked socket was counted when it was accepted.
        if revived == nil { runtime.live.clientHandlersCreated.born() }
    }

    /// Takes the current settings when a reload published new ones (one relaxed load
    /// when it did not).
    func refreshSettings() {
        guard runtime.settingsVersion.load(ordering: .relaxed) != settings.version else { return }
        adopt(runtime.settings)
    }

    /// `settings` from now on, with the limits copied out of it.
    func adopt(_ settings: GatewaySettings) {
        self.settings = settings
        limits = RequestLimits(settings)
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
        clientWritable = context.channel.isWritable
        if context.channel.isActive { connectionOpened() }
    }

    /// NIO removes every handler when the channel closes; this is where the
    /// handler ↔ context cycle ends. A removal from a still-open pipeline (not done
    /// today) ends the exchange the same way a close does.
    func handlerRemoved(context: ChannelHandlerContext) {
        connectionGone()
        self.context = nil
        clientWritable = false
    }

    func channelActive(context: ChannelHandlerContext) {
        if connectionLimits == nil, let ip = context.channel.remoteAddress?.clientIP { clientAddress = ip }
        connectionOpened()
        context.fireChannelActive()
    }

    /// How long a drain leaves a connection idle between requests open for a next
    /// request already on its way (a loopback or LAN round trip is well under it).
    static let drainGrace: Duration = .seconds(1)

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

    // MARK: Channel events

    func read(context: ChannelHandlerContext) {
        if mayRead {
            context.read()
        } else {
            readPending = true
            accountStall()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        clientWritable = writable
        withEventTime {
            let now = self.now
            clientTimeoutEvent { $0.clientWritable(writable, now: now) }
            switch state {
            case .active(let exchange):
                exchange.deadlines.clientWritable(writable, now: now)
                if writable {
                    exchange.connection?.resumeReads()
                } else {
                    armExchangeTimer(exchange)
                }
            case .idle where writable:
                // Pipelined requests held back while the client took no answers.
                processInput()
            default:
                break
            }
            if writable { resumeReadsIfPossible() }
            accountStall()
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
        if case .handshakeCompleted = event as? TLSUserEvent {
            tlsEstablished = true
            if clientCertificates != .off { readClientCertificate(context) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// After the handshake: the certificate the client presented (verified against
    /// `tls.client_ca_file` by then — one that did not verify failed the handshake).
    func readClientCertificate(_ context: ChannelHandlerContext) {
        if let certificate = (try? context.pipeline.syncOperations.nioSSL_peerCertificate()) ?? nil {
            let read = ForwardedClientCertificate.read(certificate)
            forwardedClientCertificate = read?.value
            clientCertificateSubject = read?.subject
        } else {
            clientCertificateMissing = clientCertificates == .on
        }
    }

    /// Graceful drain: a busy connection answers its current request with `Connection:
    /// close` (when its head has not gone out yet) and closes after it. Pipelined
    /// requests behind it are not answered — the client sees the close and may send them
    /// elsewhere, as after any `Connection: close`. A connection idle between requests
    /// closes within ``drainGrace`` (``ClientConnectionTimeouts/drainStarted(now:grace:)``),
    /// served the same way if its next request arrives first; one still reading its
    /// request head — new, its first request on the way — is served (or refused 408 at
    /// `timeouts.client_header`). Closed under a request already sent, either would be a
    /// reset, and a client retries a request on a new connection never, on a reused one
    /// not always. Found by the in-place upgrade under load: `hey -disable-keepalive`
    /// saw 5 resets in 9 256 requests (connections the old process accepted just before
    /// it drained), `wrk -c8` 5 read errors (keep-alive connections closed at once while
    /// their next request crossed the close).
    func drain() {
        draining = true
        switch state {
        case .idle:
            guard let phase = clientTimeouts?.phase, phase == .readingHead || phase == .idle else {
                closeClient()
                return
            }
            let now = self.now
            clientTimeoutEvent { $0.drainStarted(now: now, grace: Self.drainGrace) }
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
        accountStall()
        unlistIdle()
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
