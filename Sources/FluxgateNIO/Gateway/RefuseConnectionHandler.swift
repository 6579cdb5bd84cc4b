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
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let answer: ByteBuffer?
    private let lingerTimeout: TimeAmount?

    init(answer: ByteBuffer?, lingerTimeout: TimeAmount? = nil) {
        self.answer = answer
        self.lingerTimeout = lingerTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let answer else {
            context.close(promise: nil)
            return
        }
        // Without a linger timeout this is a plain close once the answer is out (no
        // `LingeringCloseHandler` in the pipeline); a client that takes nothing is closed
        // after 5 s either way.
        context.writeThenLingeringClose(answer, timeout: lingerTimeout, writeTimeout: .seconds(5))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@available(*, unavailable)
extension RefuseConnectionHandler: Sendable {}
