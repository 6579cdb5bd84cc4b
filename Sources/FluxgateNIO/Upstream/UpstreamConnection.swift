import FluxgateCore
import NIOCore
import NIOSSL

/// What an upstream connection reports to the exchange it currently serves.
/// All calls happen on the connection's event loop, which is also the client's.
protocol UpstreamConnectionDelegate: AnyObject {
    /// Response bytes, as read from the socket.
    func upstreamBytes(_ buffer: ByteBuffer)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    /// The connection closed (`error` nil: an orderly close by the upstream) while the
    /// exchange still had it.
    func upstreamClosed(error: (any Error)?)
    /// Whether the client side can take more bytes; reads pause while it cannot.
    var clientIsWritable: Bool { get }
}

/// One pooled HTTP/1.1 connection to an upstream, and the only handler in its
/// pipeline: request bytes go out as written by ``RequestSerializer``, response bytes
/// come in raw and are framed by the exchange's ``ResponseRelay``.
///
/// It belongs to one event loop's ``UpstreamPool``. While it serves an exchange, reads
/// are paused whenever the client cannot take more bytes (the backpressure rule of
/// swift-nio-examples' GlueHandler); while idle in the pool, any byte from the
/// upstream is a protocol violation and closes it.
final class UpstreamConnection: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let upstreamIndex: Int
    weak var pool: UpstreamPool?
    /// The exchange being served; nil while idle in the pool.
    ///
    /// Strong, and cleared wherever the connection stops serving its exchange: parked
    /// (``UpstreamPool/release(_:now:)``), closed (``close()``), or closed by the
    /// upstream (`channelInactive`, `errorCaught`) — every end of an exchange goes
    /// through one of these (``ProxyHandler/end(_:_:)`` closes a connection still
    /// attached). It was weak; a weak reference gives its target a side table, and
    /// from then on every retain and release of the ``ProxyHandler`` took the runtime's
    /// slow path and every event here a `swift_weakLoadStrong` — about 1 % of the
    /// gateway's CPU in a profile (docs/PERFORMANCE.md). `ConnectionLifetimeTests`
    /// counts live handlers after each way a connection can end, so a path that left
    /// the cycle in place would fail there.
    var delegate: (any UpstreamConnectionDelegate)?
    private(set) var context: ChannelHandlerContext?
    private var readPending = false
    /// Set once the connection served a request; a failure on a reused connection
    /// before any response byte is the classic keep-alive race, safe to retry.
    var servedRequests = 0
    /// When the pool opened it (`pool.max_connection_age`).
    var openedAt = MonotonicTime.zero
    /// Counts against the pool's connection cap until it closes.
    var countedByCap = false
    /// The pool's address generation of its slot when this connection was opened.
    var generation = 0
    /// Opened to the address its slot still has (``UpstreamPool/isCurrent(_:)``); true
    /// once the pool is gone.
    var toCurrentAddress: Bool { pool?.isCurrent(self) ?? true }
    /// When the pool closes it unless reused; set only while parked in the pool.
    var idleDeadline: MonotonicTime?
    /// Between `channelActive` and `channelInactive`. Kept here because asking the
    /// channel (`channel.isActive`) costs two reference-count pairs in NIO's lifecycle
    /// getter, and the pool asks twice per request; a parked connection that closes
    /// leaves the pool in `channelInactive` anyway.
    private(set) var isActive = false
    /// The channel's writability as of its last `channelWritabilityChanged` (NIO fires
    /// it synchronously when the flag flips), for the same reason: asking the channel
    /// costs two reference-count pairs, once or twice per request.
    private(set) var isWritable = false

    private let live: LiveObjects

    /// The loop's scratch, which lent this connection's receive buffers (nil: NIO's own).
    let scratch: LoopScratch?

    init(upstreamIndex: Int, live: LiveObjects, scratch: LoopScratch? = nil) {
        self.upstreamIndex = upstreamIndex
        self.live = live
        self.scratch = scratch
        live.upstreamConnections.born()
    }

    deinit { live.upstreamConnections.died() }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isActive = context.channel.isActive
        isWritable = context.channel.isWritable
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        isActive = false
        isWritable = false
        self.context = nil
        // A channel closed before it became active never sees `channelInactive`; its
        // place under the pool's connection cap is given back here (once: the pool
        // forgets a connection only while it still counts). Found by a load generator
        // closing its connections at the end of a run: connections opened for requests
        // that had already left were closed that way, each keeping a place at the cap,
        // until every request waited `timeouts.connect` for a 504.
        pool?.connectionClosed(self)
    }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        context.fireChannelActive()
    }

    /// The pool's connect succeeded (NIO reports it before `channelActive`).
    func connected() {
        isActive = true
    }

    // MARK: Driven by the exchange

    func write(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    /// Writes and flushes `first` and then `more` with one look at the context (each
    /// look is a reference-count pair); returns whether the channel is still writable.
    func send(_ first: ByteBuffer, _ more: [ByteBuffer]) -> Bool {
        guard let context else { return false }
        context.write(wrapOutboundOut(first), promise: nil)
        for bytes in more { context.write(wrapOutboundOut(bytes), promise: nil) }
        context.flush()
        return isWritable
    }

    func resumeReads() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }

    func close() {
        delegate = nil
        context?.close(promise: nil)
    }

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate else {
            // Nothing was asked: an idle connection must stay silent.
            context.close(promise: nil)
            return
        }
        let buffer = unwrapInboundIn(data)
        delegate.upstreamBytes(buffer)
        scratch?.keepReceiveBuffer(buffer)  // handled: lent back to the loop
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        delegate?.upstreamWritabilityChanged(isWritable: isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        pool?.connectionClosed(self)
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed(error: nil)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case NIOSSLError.uncleanShutdown? = error as? NIOSSLError {
            // An https:// upstream closed TCP without TLS close_notify (Python's `ssl`
            // sockets and many HTTP/1.0 servers do): the close itself, which
            // `channelInactive` reports next. A body that ends at the close ends there,
            // as over plain TCP and as nginx and HAProxy take it; one framed by
            // Content-Length or chunks and cut short is still cut short. Until
            // 2026-12-05 every such answer counted as a reset against the upstream,
            // which was ejected after five of them.
            context.close(promise: nil)
            return
        }
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed(error: error)
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.clientIsWritable {
            readPending = true
            return
        }
        context.read()
    }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}


