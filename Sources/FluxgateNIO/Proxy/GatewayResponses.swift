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

/// The gateway's own answers, encoded once: a JSON body per answer kind held in a
/// `ByteBuffer`, so an answer costs a head and a copy-free buffer write rather than
/// per-request JSON encoding.
struct GatewayResponses: Sendable {
    private let bodies: [GatewayAnswer: ByteBuffer]
    /// A complete `408` response as raw bytes, for the timeout handler that sits
    /// below the HTTP encoder.
    let rawRequestTimeout: ByteBuffer

    init() {
        var bodies: [GatewayAnswer: ByteBuffer] = [:]
        for answer in GatewayAnswer.allCases {
            bodies[answer] = ByteBuffer(string: #"{"error":"\#(answer.rawValue)","message":"\#(answer.message)"}"#)
        }
        self.bodies = bodies
        let body = bodies[.requestTimeout]!
        var raw = ByteBuffer(
            string: "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: \(body.readableBytes)\r\nconnection: close\r\n\r\n"
        )
        var copy = body
        raw.writeBuffer(&copy)
        self.rawRequestTimeout = raw
    }

    func body(_ answer: GatewayAnswer) -> ByteBuffer { bodies[answer]! }

    func head(_ answer: GatewayAnswer, requestID: String?, close: Bool, version: HTTPVersion = .http1_1) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(5)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(bodies[answer]!.readableBytes))
        if let requestID { headers.add(name: "x-request-id", value: requestID) }
        if close {
            headers.add(name: "connection", value: "close")
        } else if version == .http1_0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: version, status: answer.status, headers: headers)
    }
}
