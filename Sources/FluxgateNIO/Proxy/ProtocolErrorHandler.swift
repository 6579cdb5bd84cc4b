import NIOCore
import NIOHTTP1

/// Answers requests the decoder could not parse: 431 when the head exceeded
/// `limits.max_header_bytes`, 400 for everything else, always with a JSON body and
/// `Connection: close` — an answer, not a reset.
///
/// Same position and contract as NIOHTTP1's `HTTPServerProtocolErrorHandler` (which
/// only knows 400 and sends no body): it must write synchronously, because
/// `ByteToMessageHandler` closes the channel right after the error is delivered, and
/// it may answer only when no other response has started.
final class ProtocolErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let responses: GatewayResponses
    private var responseInProgress = false

    init(responses: GatewayResponses) {
        self.responses = responses
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if !responseInProgress {
            let kind: GatewayAnswer = parserError == .headerOverflow ? .headersTooLarge : .badRequest
            context.write(wrapOutboundOut(.head(responses.head(kind, requestID: nil, close: true))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(responses.body(kind)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            responseInProgress = true
        case .end:
            responseInProgress = false
        default:
            break
        }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension ProtocolErrorHandler: Sendable {}
