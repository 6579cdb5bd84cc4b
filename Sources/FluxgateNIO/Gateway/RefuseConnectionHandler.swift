import FluxgateNIOSupport
import NIOCore

/// The whole pipeline of a connection refused at accept (`limits.max_connections`,
/// `limits.max_connections_per_client`): one prepared 503 with `Connection: close`,
/// then the close — a lingering one when `lingerTimeout` is given (the half-close, then
/// the client's input read and discarded until it closes, as after the gateway's other
/// refusals). Every HTTP client sends its request right after connecting, so by the
/// time a refused connection is accepted its request has usually arrived unread, and a
/// plain close answers it with a TCP reset that can destroy the 503 before the client
/// reads it: found by the k6 stress test at the connection cap, where 1 390 of 3 197
/// refused `POST`s saw "broken pipe" instead of the answer (2026-12-04).
///
/// When it lingers, the 503 waits for the client's first bytes (at most `lingerTimeout`;
/// a client that sends nothing then gets it and a plain close): an answer that arrives
/// before its request is, to an HTTP client, no answer to it. Go's `net/http` (k6's)
/// drops such an "unsolicited response received on idle HTTP channel" and fails the
/// request with a transport error instead of handing it the 503 — 195 of the 4 237
/// refusals of a stress run (2026-12-04). Without a linger (a flood of refusals, beyond
/// ``GatewayServer/maxLingeringRefusals``) it is written at once, as before: holding
/// the descriptor is what the cap protects.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let answer: ByteBuffer?
    private let lingerTimeout: TimeAmount?
    /// The 503 went out (or is going): what the client sends now is discarded.
    private var answered = false
    private var waiting: Scheduled<Void>?

    init(answer: ByteBuffer?, lingerTimeout: TimeAmount? = nil) {
        self.answer = answer
        self.lingerTimeout = lingerTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        guard answer != nil else {
            context.close(promise: nil)
            return
        }
        guard let lingerTimeout else {
            respond(context: context, linger: false)
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        waiting = context.eventLoop.scheduleTask(in: lingerTimeout) {
            let (handler, context) = bound.value
            handler.respond(context: context, linger: false)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !answered { respond(context: context, linger: true) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client closed its side before sending anything: answer, then close.
        if case ChannelEvent.inputClosed = event, !answered { respond(context: context, linger: false) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        waiting?.cancel()
        waiting = nil
    }

    /// Writes the 503 and ends the connection: a lingering close when the client has
    /// sent something (it may still be sending), else a plain one.
    private func respond(context: ChannelHandlerContext, linger: Bool) {
        guard !answered, let answer else { return }
        answered = true
        waiting?.cancel()
        waiting = nil
        // Without a linger timeout this is a plain close once the answer is out (no
        // `LingeringCloseHandler` in the pipeline); a client that takes nothing is closed
        // after 5 s either way.
        context.writeThenLingeringClose(answer, timeout: linger ? lingerTimeout : nil, writeTimeout: .seconds(5))
    }
}

@available(*, unavailable)
extension RefuseConnectionHandler: Sendable {}
