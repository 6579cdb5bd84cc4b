import NIOCore
import NIOHTTP1

/// One client request on its way through the gateway: what was asked, where it is
/// going, and how far each direction has got.
final class Exchange {
    /// The head as sent upstream (hop-by-hop fields removed, forwarding fields added).
    let upstreamHead: HTTPRequestHead
    let clientVersion: HTTPVersion
    let requestID: String
    let isIdempotent: Bool
    /// The client asked to keep the connection open.
    var clientKeepAlive: Bool

    var upstream: Int
    var tried: [Int] = []
    var connection: UpstreamConnection?
    var connecting = false
    /// Request parts that arrived before an upstream connection was ready.
    var buffered: [HTTPClientRequestPart] = []
    var requestComplete = false
    var bodyBytes = 0
    /// A body byte went upstream: the request can no longer be replayed elsewhere.
    var bodyForwarded = false
    var responseHeadSent = false
    var upstreamKeepAlive = true
    var headerTimer: Scheduled<Void>?
    var lastConnectError: (any Error)?
    var retriedStaleConnection = false

    init(upstreamHead: HTTPRequestHead, clientVersion: HTTPVersion, requestID: String, clientKeepAlive: Bool, upstream: Int) {
        self.upstreamHead = upstreamHead
        self.clientVersion = clientVersion
        self.requestID = requestID
        self.clientKeepAlive = clientKeepAlive
        self.upstream = upstream
        switch upstreamHead.method {
        case .GET, .HEAD, .OPTIONS, .PUT, .DELETE, .TRACE: self.isIdempotent = true
        default: self.isIdempotent = false
        }
    }
}

@available(*, unavailable)
extension Exchange: Sendable {}
