import NIOCore

/// nginx's lingering close: when a server closes a connection whose client is still
/// sending (an oversized head answered 431, a body refused with 413, a 408), the
/// kernel answers the unread bytes with a TCP reset, and the reset can destroy the
/// answer before the client read it. So instead of closing at once: half-close
/// (the answer is followed by a FIN, the client sees the end of the response), keep
/// reading and discarding what the client still sends, and close when it closes its
/// side, after `timeout`, or after `maxBytes` — whichever comes first.
///
/// Sits first in the pipeline and does nothing until a handler after it sends
/// ``LingeringCloseHandler/Request`` as an outbound user event once its last answer
/// was flushed. From then on no input reaches the handlers after it.
public final class LingeringCloseHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// The outbound user event asking for a lingering close.
    public struct Request: Sendable {
        public init() {}
    }

    /// Discarded bytes after which the connection closes anyway (nginx reads in 4 KiB
    /// pieces until its timer; a byte cap bounds the work an endless sender can cause).
    public static let maxBytes = 1 << 20

    private let timeout: TimeAmount
    private let closesLinger: Bool
    private var lingering = false
    private var discarded = 0
    private var timer: Scheduled<Void>?
    private var closePromise: EventLoopPromise<Void>?

    /// - Parameter closesLinger: every full close a later handler asks for while the
    ///   client may still be sending becomes a lingering close (for pipelines whose
    ///   handlers close on their own, such as NIOHTTP1's error handler in the demo
    ///   upstream). The gateway asks explicitly with ``Request`` instead.
    public init(timeout: TimeAmount, closesLinger: Bool = false) {
        self.timeout = timeout
        self.closesLinger = closesLinger
    }

    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is Request else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        promise?.succeed()
        startLingering(context: context)
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard closesLinger, mode == .all, !lingering, timeout > .zero, context.channel.isActive else {
            context.close(mode: mode, promise: promise)
            return
        }
        closePromise = promise
        startLingering(context: context)
    }

    private func startLingering(context: ChannelHandlerContext) {
        guard !lingering else { return }
        guard timeout > .zero, context.channel.isActive else {
            context.close(promise: nil)
            return
        }
        lingering = true
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) { loopBound.value.close(promise: nil) }
        // Half-close: the client reads the answer, then the end of the stream.
        context.close(mode: .output).whenFailure { _ in loopBound.value.close(promise: nil) }
        context.read()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard lingering else {
            context.fireChannelRead(data)
            return
        }
        discarded += unwrapInboundIn(data).readableBytes
        if discarded > Self.maxBytes { context.close(promise: nil) }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        guard lingering else {
            context.fireChannelReadComplete()
            return
        }
        // Handlers after this one may have stopped asking for reads; discarding needs them.
        context.read()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if lingering, case .inputClosed = event as? ChannelEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if lingering {
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    private func stop() {
        timer?.cancel()
        timer = nil
        closePromise?.succeed()
        closePromise = nil
    }
}

@available(*, unavailable)
extension LingeringCloseHandler: Sendable {}

extension ChannelHandlerContext {
    /// A lingering close for a pipeline that keeps no ``LingeringCloseHandler`` on the
    /// hot path (the gateway's client connections): one is put in just before this
    /// handler — after TLS, if any — when the close begins, a rare event, so no
    /// request pays a pipeline hop for it.
    public func lingeringClose(timeout: TimeAmount) {
        if (try? pipeline.syncOperations.handler(type: LingeringCloseHandler.self)) == nil {
            do {
                try pipeline.syncOperations.addHandler(LingeringCloseHandler(timeout: timeout), position: .before(handler))
            } catch {
                close(promise: nil)
                return
            }
        }
        lingeringClose()
    }

    /// Writes `bytes` (the last of the connection), then a lingering close (with a
    /// ``LingeringCloseHandler`` put in for `timeout`, or the pipeline's own when it has
    /// one, `timeout` nil). The write completes once everything queued before it is on
    /// the wire, which may be never — a client that stopped reading, or a TLS handshake
    /// that never finished (NIOSSL holds writes until it does); such clients were held
    /// for ever (found by trying both) — so the connection is closed `writeTimeout`
    /// after the write began whatever happens to it (what the kernel already holds is
    /// still sent; only the gateway's own queue is dropped).
    public func writeThenLingeringClose(_ bytes: ByteBuffer, timeout: TimeAmount?, writeTimeout: TimeAmount) {
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let hardClose = eventLoop.scheduleTask(in: writeTimeout) { loopBound.value.close(promise: nil) }
        writeAndFlush(NIOAny(bytes)).assumeIsolated().whenComplete { _ in
            hardClose.cancel()
            if let timeout {
                loopBound.value.lingeringClose(timeout: timeout)
            } else {
                loopBound.value.lingeringClose()
            }
        }
    }

    /// Ends the connection after what was written: a lingering close when the pipeline
    /// has a ``LingeringCloseHandler``, else a plain close.
    public func lingeringClose() {
        let promise = eventLoop.makePromise(of: Void.self)
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        promise.futureResult.whenFailure { _ in loopBound.value.close(promise: nil) }
        triggerUserOutboundEvent(LingeringCloseHandler.Request(), promise: promise)
    }
}
