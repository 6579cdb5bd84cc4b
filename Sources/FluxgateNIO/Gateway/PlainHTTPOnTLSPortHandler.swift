import FluxgateCore
import FluxgateNIOSupport
import NIOCore

/// First on every connection of a TLS listener, until its first bytes: a client that
/// speaks plain HTTP to the HTTPS port (`curl http://host:443/`) gets a plain-text 400
/// naming the mistake — nginx's "The plain HTTP request was sent to HTTPS port" —
/// instead of a TLS handshake failure it cannot read (curl: "Empty reply from server").
///
/// A TLS connection starts with a handshake record (0x16); a plain HTTP request with a
/// method's first letter (an uppercase ASCII letter). Anything else goes to TLS, which
/// refuses it as before. After the first bytes the handler removes itself, so a TLS
/// connection keeps no trace of it. The answer goes straight to the socket (this handler
/// sits before `NIOSSLServerHandler`), followed by the gateway's lingering close
/// (``ChannelHandlerContext/writeThenLingeringClose(_:timeout:writeTimeout:)``: what the
/// client still sends is discarded, bounded in time and bytes, so the answer is not lost
/// to a reset).
final class PlainHTTPOnTLSPortHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let stats: LoopStats
    /// `timeouts.lingering_close`.
    private let lingerTimeout: TimeAmount
    /// The answer is on its way: reads arriving before the lingering close takes over are dropped.
    private var refused = false

    init(stats: LoopStats, lingerTimeout: TimeAmount) {
        self.stats = stats
        self.lingerTimeout = lingerTimeout
    }

    static let answer: ByteBuffer = {
        let body = #"{"error":"plain_http_on_tls_port","message":"this port speaks HTTPS: send the request with https://"}"#
        return ByteBuffer(
            string: "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n"
                + "connection: close\r\n\r\n" + body)
    }()

    /// Whether `first` can begin a plain HTTP request rather than a TLS record.
    static func looksLikePlainHTTP(_ first: UInt8) -> Bool {
        first >= UInt8(ascii: "A") && first <= UInt8(ascii: "Z")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if refused { return }
        guard let first = unwrapInboundIn(data).readableBytesView.first else {
            context.fireChannelRead(data)
            return
        }
        guard Self.looksLikePlainHTTP(first) else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        refused = true
        stats.traffic.refused(.badRequest)
        // The lingering close's handler goes in before this one and takes every later read.
        context.writeThenLingeringClose(Self.answer, timeout: lingerTimeout, writeTimeout: max(lingerTimeout, .seconds(5)))
    }
}

@available(*, unavailable)
extension PlainHTTPOnTLSPortHandler: Sendable {}
