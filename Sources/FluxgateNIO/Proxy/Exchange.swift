import NIOCore
import NIOHTTP1

/// One client request on its way through the gateway: what goes upstream, where it
/// is going, and how far each direction has got.
final class Exchange {
    /// The serialized head as sent upstream (kept to resend on a stale connection).
    let upstreamHead: ByteBuffer
    let clientHTTP10: Bool
    let requestID: String
    let isIdempotent: Bool
    /// The client framed its body with chunked encoding; it is re-chunked upstream.
    let chunkedBody: Bool
    let isHeadRequest: Bool

    var upstream: Int
    var tried: [Int] = []
    var connection: UpstreamConnection?
    var connecting = false
    /// Request bytes produced before an upstream connection was ready.
    var pending: [ByteBuffer] = []
    var requestComplete = false
    var bodyBytes = 0
    /// A body byte went upstream: the request can no longer be replayed elsewhere.
    var bodyForwarded = false
    var relay: ResponseRelay
    /// When the upstream's response head is due (set once the request is fully sent).
    var headerDeadline: NIODeadline?
    var retriedStaleConnection = false

    init(
        upstreamHead: ByteBuffer, method: HTTPMethod, clientHTTP10: Bool, clientKeepAlive: Bool, chunkedBody: Bool,
        requestID: String, upstream: Int
    ) {
        self.upstreamHead = upstreamHead
        self.clientHTTP10 = clientHTTP10
        self.requestID = requestID
        self.chunkedBody = chunkedBody
        self.upstream = upstream
        self.isHeadRequest = method == .HEAD
        switch method {
        case .GET, .HEAD, .OPTIONS, .PUT, .DELETE, .TRACE: self.isIdempotent = true
        default: self.isIdempotent = false
        }
        self.relay = ResponseRelay(
            requestWasHead: method == .HEAD, clientHTTP10: clientHTTP10, clientKeepAlive: clientKeepAlive, requestID: requestID)
    }
}

@available(*, unavailable)
extension Exchange: Sendable {}
