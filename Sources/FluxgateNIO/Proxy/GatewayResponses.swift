import NIOCore
import NIOHTTP1

/// Why the gateway answered a request itself instead of relaying the upstream's answer.
enum GatewayAnswer: String, Sendable, CaseIterable {
    case badRequest = "bad_request"
    case requestTimeout = "request_timeout"
    case bodyTooLarge = "body_too_large"
    case headersTooLarge = "headers_too_large"
    case upstreamUnavailable = "upstream_unavailable"
    case upstreamError = "upstream_error"
    case upstreamTimeout = "upstream_timeout"
    case noUpstream = "no_healthy_upstream"

    var status: HTTPResponseStatus {
        switch self {
        case .badRequest: .badRequest
        case .requestTimeout: .requestTimeout
        case .bodyTooLarge: .payloadTooLarge
        case .headersTooLarge: .requestHeaderFieldsTooLarge
        case .upstreamUnavailable, .upstreamError: .badGateway
        case .upstreamTimeout: .gatewayTimeout
        case .noUpstream: .serviceUnavailable
        }
    }

    var message: String {
        switch self {
        case .badRequest: "the request could not be parsed as HTTP/1.1"
        case .requestTimeout: "the request head did not arrive in time"
        case .bodyTooLarge: "the request body exceeds limits.max_body_bytes"
        case .headersTooLarge: "the request headers exceed limits.max_header_bytes"
        case .upstreamUnavailable: "no upstream accepted the connection"
        case .upstreamError: "the upstream closed the connection or sent an invalid response"
        case .upstreamTimeout: "the upstream did not answer in time"
        case .noUpstream: "no upstream is configured or ready"
        }
    }
}

/// The gateway's own answers, prepared once: per answer kind, the status line with
/// fixed fields and the JSON body, each in a `ByteBuffer`. An answer costs two
/// copy-free buffer writes and one small buffer for the per-request fields, never
/// per-request JSON encoding.
struct GatewayResponses: Sendable {
    private struct Prepared: Sendable {
        var prefix: ByteBuffer
        var body: ByteBuffer
    }

    private let prepared: [GatewayAnswer: Prepared]
    static let continueResponse = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")

    init() {
        var prepared: [GatewayAnswer: Prepared] = [:]
        for answer in GatewayAnswer.allCases {
            let body = ByteBuffer(string: #"{"error":"\#(answer.rawValue)","message":"\#(answer.message)"}"#)
            let prefix = ByteBuffer(
                string: "\(answer.status.code) \(answer.status.reasonPhrase)\r\ncontent-type: application/json\r\ncontent-length: \(body.readableBytes)\r\n")
            prepared[answer] = Prepared(prefix: prefix, body: body)
        }
        self.prepared = prepared
    }

    /// A complete response: `HTTP/1.x` status line, fields, optional request ID,
    /// `Connection` as decided, and the body unless the request was HEAD.
    func response(
        _ answer: GatewayAnswer, requestID: String?, close: Bool, http10: Bool = false, includeBody: Bool = true,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let prepared = self.prepared[answer]!
        var buffer = allocator.buffer(capacity: prepared.prefix.readableBytes + prepared.body.readableBytes + 96)
        buffer.writeStaticString(http10 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeImmutableBuffer(prepared.prefix)
        if let requestID { buffer.writeField("x-request-id", requestID) }
        if close {
            buffer.writeStaticString("connection: close\r\n")
        } else if http10 {
            buffer.writeStaticString("connection: keep-alive\r\n")
        }
        buffer.writeStaticString("\r\n")
        if includeBody { buffer.writeImmutableBuffer(prepared.body) }
        return buffer
    }

    /// The 408 written by the timeout handler, below the HTTP layer.
    var rawRequestTimeout: ByteBuffer {
        response(.requestTimeout, requestID: nil, close: true, allocator: ByteBufferAllocator())
    }
}
