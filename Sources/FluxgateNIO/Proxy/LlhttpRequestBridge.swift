import FluxgateCore
import NIOCore
import NIOHTTP1

/// `parser: llhttp`, the fallback: NIOHTTP1's decoder (llhttp) reads the client's
/// bytes first, and this handler hands ``ProxyHandler`` its parts encoded back into
/// plain HTTP/1.1 bytes — a canonical head, a body re-chunked when it came chunked —
/// which the gateway's parser then reads as usual. An operator who suspects the
/// gateway's parser gets llhttp's judgement on the raw input at the cost of a second
/// parse (docs/CONFIGURATION.md). llhttp's refusal reaches ``ProxyHandler`` in order,
/// as an event after the bytes that preceded it.
final class LlhttpRequestBridge: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = ByteBuffer

    /// NIOHTTP1 refused the input at this point.
    struct InputRefused {
        var refusal: RequestHeadParser.Refusal
    }

    private var chunked = false
    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        var buffer = context.channel.allocator.buffer(capacity: 0)
        switch unwrapInboundIn(data) {
        case .head(let head):
            buffer.reserveCapacity(256)
            buffer.writeString(head.method.rawValue)
            buffer.writeStaticString(" ")
            buffer.writeString(head.uri)
            buffer.writeStaticString(head.version.minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n")
            chunked = false
            for (name, value) in head.headers {
                if HeaderName.classify(name) == .transferEncoding { chunked = true }
                buffer.writeField(name, value)
            }
            buffer.writeStaticString("\r\n")
        case .body(let body):
            if chunked {
                buffer.writeString(String(body.readableBytes, radix: 16))
                buffer.writeStaticString("\r\n")
                var body = body
                buffer.writeBuffer(&body)
                buffer.writeStaticString("\r\n")
            } else {
                context.fireChannelRead(wrapInboundOut(body))
                return
            }
        case .end(let trailers):
            guard chunked else { return }
            buffer.writeStaticString("0\r\n")
            for (name, value) in trailers ?? [:] { buffer.writeField(name, value) }
            buffer.writeStaticString("\r\n")
        }
        context.fireChannelRead(wrapInboundOut(buffer))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError {
            guard !refused else { return }
            refused = true
            context.fireUserInboundEventTriggered(InputRefused(refusal: error == .headerOverflow ? .tooLarge : .malformed("llhttp: \(error)")))
            return
        }
        // Input after a parse error: already answered.
        if error is ByteToMessageDecoderError { return }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension LlhttpRequestBridge: Sendable {}
