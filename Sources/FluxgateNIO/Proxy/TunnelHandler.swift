import NIOCore

/// An upgraded connection (WebSocket, after the upstream's 101): bytes both ways,
/// untouched, with backpressure each way (reads on one side pause while the other
/// cannot take more), an idle timeout (`timeouts.tunnel_idle`), and its place among
/// `limits.max_tunnels` given back when it ends. It holds no admission slot: a
/// WebSocket open for hours must not starve ordinary requests of slots.
///
/// Replaces ``ProxyHandler`` (and any HTTP decoder) in the client's pipeline; the
/// upstream connection, which it owns from then on, reports to it as its delegate.
final class TunnelHandler: ChannelDuplexHandler, UpstreamConnectionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let upstream: UpstreamConnection
    private let runtime: GatewayRuntime
    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var lastActivity = NIODeadline.now()
    private var timer: Scheduled<Void>?
    private var ended = false
    /// Bytes the upstream sent right after its 101, in the same read.
    private var early: ByteBuffer?
    init(upstream: UpstreamConnection, runtime: GatewayRuntime, idleTimeout: TimeAmount, early: ByteBuffer?) {
        self.upstream = upstream
        self.runtime = runtime
        self.idleTimeout = idleTimeout
        self.early = early
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        upstream.delegate = self
        lastActivity = context.eventLoop.now
        armTimer(context: context)
        if let early {
            self.early = nil
            context.writeAndFlush(wrapOutboundOut(early), promise: nil)
        }
        // The HTTP side had stopped reading at the upgrade request.
        context.read()
        upstream.resumeReads()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        end()
        self.context = nil
    }

    // MARK: Client → upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = context.eventLoop.now
        upstream.write(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        upstream.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if upstream.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream.resumeReads() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Upstream → client

    var clientIsWritable: Bool { context?.channel.isWritable ?? false }

    func upstreamBytes(_ buffer: ByteBuffer) {
        guard let context else { return }
        lastActivity = context.eventLoop.now
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    func upstreamReadComplete() { context?.flush() }

    func upstreamWritabilityChanged(isWritable: Bool) {
        guard isWritable, readPending, let context else { return }
        readPending = false
        context.read()
    }

    func upstreamClosed(error: (any Error)?) {
        context?.flush()
        context?.close(promise: nil)
    }

    // MARK: Idle timeout and the end

    /// Lazily re-armed: a timer that finds recent activity sleeps until the idle
    /// deadline that activity set, so bytes never touch the timer.
    private func armTimer(context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: lastActivity + idleTimeout) { handler.value.timerFired() }
    }

    private func timerFired() {
        guard let context, !ended else { return }
        if context.eventLoop.now >= lastActivity + idleTimeout {
            context.close(promise: nil)
        } else {
            armTimer(context: context)
        }
    }

    private func end() {
        guard !ended else { return }
        ended = true
        timer?.cancel()
        timer = nil
        upstream.close()
        runtime.releaseTunnel()
    }
}

@available(*, unavailable)
extension TunnelHandler: Sendable {}
