import NIOCore

/// The whole pipeline of a connection refused at accept (`limits.max_connections`,
/// `limits.max_connections_per_client`): one prepared 503 with `Connection: close`,
/// then the close. Nothing of the client's input is read.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let answer: ByteBuffer?

    init(answer: ByteBuffer?) {
        self.answer = answer
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let answer else {
            context.close(promise: nil)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(answer)).whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@available(*, unavailable)
extension RefuseConnectionHandler: Sendable {}
