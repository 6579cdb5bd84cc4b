import NIOCore

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
    weak var delegate: (any UpstreamConnectionDelegate)?
    private(set) var context: ChannelHandlerContext?
    private var readPending = false
    /// Set once the connection served a request; a failure on a reused connection
    /// before any response byte is the classic keep-alive race, safe to retry.
    var servedRequests = 0
    /// Counts against the pool's connection cap until it closes.
    var countedByCap = false
    /// When the pool closes it unless reused; set only while parked in the pool.
    var idleDeadline: NIODeadline?
    var isActive: Bool { context?.channel.isActive ?? false }
    var isWritable: Bool { context?.channel.isWritable ?? false }

    private let live: LiveObjects

    init(upstreamIndex: Int, live: LiveObjects) {
        self.upstreamIndex = upstreamIndex
        self.live = live
        live.upstreamConnections.born()
    }

    deinit { live.upstreamConnections.died() }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Driven by the exchange

    func write(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() {
        context?.flush()
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
        delegate.upstreamBytes(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        pool?.connectionClosed(self)
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed(error: nil)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
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


