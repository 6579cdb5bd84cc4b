import FluxgateCore
import NIOCore
import NIOHTTP1

/// Why the gateway answered a request itself instead of relaying the upstream's answer.
enum GatewayAnswer: String, Sendable, CaseIterable {
    case badRequest = "bad_request"
    /// HTTP/1.1 without `Host`, several `Host` fields, or one that disagrees with an absolute-form target.
    case badHost = "bad_host"
    /// A path whose dot segments climb above the root.
    case badPath = "bad_path"
    /// CONNECT: Fluxgate is a reverse proxy, not a forward proxy or tunnel.
    case methodNotAllowed = "method_not_allowed"
    /// TRACE while `limits.allow_trace` is false (the default).
    case traceNotAllowed = "trace_not_allowed"
    /// `tls.verify_client: on` and the client presented no certificate.
    case clientCertificateRequired = "client_certificate_required"
    case requestTimeout = "request_timeout"
    /// The request body stopped arriving (`timeouts.client_body`).
    case bodyTimeout = "body_timeout"
    /// `limits.max_connections` / `limits.max_connections_per_client` (written at accept).
    case tooManyConnections = "too_many_connections"
    case bodyTooLarge = "body_too_large"
    case headersTooLarge = "headers_too_large"
    /// The request line alone exceeds `limits.max_header_bytes`.
    case uriTooLong = "uri_too_long"
    /// More header fields than `limits.max_header_count`.
    case tooManyHeaders = "too_many_headers"
    /// `HTTP/2.0` (or later) on this HTTP/1.1 port.
    case versionNotSupported = "http_version_not_supported"
    /// A method token outside the ones the gateway forwards.
    case methodNotImplemented = "method_not_implemented"
    case upstreamUnavailable = "upstream_unavailable"
    case upstreamError = "upstream_error"
    case upstreamTimeout = "upstream_timeout"
    /// The gateway itself could not open an upstream connection (out of descriptors).
    case gatewayOutOfResources = "gateway_out_of_resources"
    /// A request body could not be written to (or read from) its spool file (``BodySpool``).
    case spoolFailed = "spool_failed"

    var status: HTTPResponseStatus {
        switch self {
        case .badRequest, .badHost, .badPath, .clientCertificateRequired: .badRequest
        case .methodNotAllowed, .traceNotAllowed: .methodNotAllowed
        case .requestTimeout, .bodyTimeout: .requestTimeout
        case .tooManyConnections: .serviceUnavailable
        case .bodyTooLarge: .payloadTooLarge
        case .headersTooLarge, .tooManyHeaders: .requestHeaderFieldsTooLarge
        case .uriTooLong: .uriTooLong
        case .versionNotSupported: .httpVersionNotSupported
        case .methodNotImplemented: .notImplemented
        case .upstreamUnavailable, .upstreamError: .badGateway
        case .upstreamTimeout: .gatewayTimeout
        case .gatewayOutOfResources: .serviceUnavailable
        case .spoolFailed: .internalServerError
        }
    }

    var message: String {
        switch self {
        case .badRequest: "the request could not be parsed as HTTP/1.1"
        case .badHost: "an HTTP/1.1 request needs exactly one Host field, matching an absolute-form target"
        case .badPath: "the request path climbs above the root"
        case .methodNotAllowed: "CONNECT is not supported: Fluxgate is a reverse proxy"
        case .traceNotAllowed: "TRACE is refused here (limits.allow_trace)"
        case .clientCertificateRequired: "this listener requires a client certificate (tls.verify_client) and none was sent"
        case .requestTimeout: "the request head did not arrive in time"
        case .bodyTimeout: "the request body did not arrive in time"
        case .tooManyConnections: "too many connections; try again later"
        case .bodyTooLarge: "the request body exceeds limits.max_body_bytes"
        case .headersTooLarge: "the request headers exceed limits.max_header_bytes"
        case .uriTooLong: "the request line exceeds limits.max_header_bytes"
        case .tooManyHeaders: "the request has more header fields than limits.max_header_count"
        case .versionNotSupported: "this port speaks HTTP/1.1 (and 1.0); send the request as HTTP/1.1"
        case .methodNotImplemented:
            "the gateway forwards GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, PURGE, WebDAV's methods and TRACE if allowed (case-sensitive)"
        case .upstreamUnavailable: "no upstream accepted the connection"
        case .upstreamError: "the upstream closed the connection or sent an invalid response"
        case .upstreamTimeout: "the upstream did not answer in time"
        case .gatewayOutOfResources: "the gateway is out of file descriptors; try again later"
        case .spoolFailed: "the gateway could not store the request body (limits.request_spool_dir)"
        }
    }
}

/// The gateway's own answers, prepared once: per answer kind, the status line with
/// fixed fields and the JSON body, each in a `ByteBuffer`. An answer is one buffer
/// the size of the whole response, the prepared pieces copied in around the
/// per-request fields: no per-request JSON encoding or string building.
struct GatewayResponses: Sendable {
    private struct Prepared: Sendable {
        /// Status line (after the version) and fixed fields, `content-length` included.
        var prefix: ByteBuffer
        /// The same without `content-length`, for an answer that names its detail.
        var prefixWithoutLength: ByteBuffer
        var body: ByteBuffer
    }

    private let prepared: [GatewayAnswer: Prepared]
    static let continueResponse = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")

    init() {
        var prepared: [GatewayAnswer: Prepared] = [:]
        for answer in GatewayAnswer.allCases {
            let body = ByteBuffer(string: #"{"error":"\#(answer.rawValue)","message":"\#(answer.message)"}"#)
            // RFC 9110 §15.5.6: a 405 lists the methods that are allowed.
            let allow = answer.status == .methodNotAllowed ? "allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n" : ""
            let start = "\(answer.status.code) \(answer.status.reasonPhrase)\r\ncontent-type: application/json\r\n\(allow)"
            prepared[answer] = Prepared(
                prefix: ByteBuffer(string: start + "content-length: \(body.readableBytes)\r\n"), prefixWithoutLength: ByteBuffer(string: start),
                body: body)
        }
        self.prepared = prepared
    }

    /// A complete response: `HTTP/1.x` status line, fields (`date` the loop's line for
    /// this second, ``LoopScratch/dateField(now:)``), optional request ID, `Connection` as
    /// decided, and the body unless the request was HEAD.
    func response(
        _ answer: GatewayAnswer, requestID: RequestID?, close: Bool, http10: Bool = false, includeBody: Bool = true,
        date: ByteBuffer, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 0)
        response(answer, requestID: requestID, close: close, http10: http10, includeBody: includeBody, date: date, into: &buffer)
        return buffer
    }

    /// The 408 for a head that did not arrive in time, with `Connection: close`:
    /// written below the HTTP layer, before any request.
    func requestTimeout(date: ByteBuffer) -> ByteBuffer {
        response(.requestTimeout, requestID: nil, close: true, date: date, allocator: ByteBufferAllocator())
    }

    /// 503 `too_many_connections` with `Connection: close`, for connections refused at accept.
    func tooManyConnections(date: ByteBuffer) -> ByteBuffer {
        response(.tooManyConnections, requestID: nil, close: true, date: date, allocator: ByteBufferAllocator())
    }

    /// The answer written into `buffer` (a reused one: ``LoopScratch``). `detail`, when
    /// given, follows the message (`"…: Host has an empty label"`): the parser's reason
    /// for refusing a request, so the client and whoever reads its error learn which
    /// rule it broke — the reasons are the gateway's own fixed texts, never the input.
    func response(
        _ answer: GatewayAnswer, requestID: RequestID?, close: Bool, http10: Bool = false, includeBody: Bool = true,
        detail: String? = nil, date: ByteBuffer, into buffer: inout ByteBuffer
    ) {
        let prepared = self.prepared[answer]!
        if let detail {
            let body = #"{"error":"\#(answer.rawValue)","message":\#(JSONText.quote(answer.message + ": " + detail))}"#
            buffer.reserveCapacity(
                minimumWritableBytes: prepared.prefixWithoutLength.readableBytes + date.readableBytes + body.utf8.count + 128)
            buffer.writeStaticString("HTTP/1.1 ")
            buffer.writeImmutableBuffer(prepared.prefixWithoutLength)
            buffer.writeImmutableBuffer(date)
            buffer.writeString("content-length: \(body.utf8.count)\r\n")
            buffer.endHead(requestID: requestID, close: close, http10: http10)
            if includeBody { buffer.writeString(body) }
            return
        }
        buffer.reserveCapacity(minimumWritableBytes: prepared.prefix.readableBytes + date.readableBytes + prepared.body.readableBytes + 96)
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeImmutableBuffer(prepared.prefix)
        buffer.writeImmutableBuffer(date)
        buffer.endHead(requestID: requestID, close: close, http10: http10)
        if includeBody { buffer.writeImmutableBuffer(prepared.body) }
    }

    /// A shed: 429 or 503 with `Retry-After`, `X-Fluxgate-Shed` and the JSON body
    /// `{"error","message","retry_after_s"}`; 429 adds `RateLimit-Policy` and
    /// `RateLimit` (draft-ietf-httpapi-ratelimit-headers). Assembled from prepared
    /// pieces; only the numbers are written per request.
    func shed(
        _ rejection: AdmissionGate.Rejection, requestID: RequestID, close: Bool, http10: Bool, includeBody: Bool,
        date: ByteBuffer, into buffer: inout ByteBuffer
    ) {
        let prepared = Self.shedPieces[rejection.reason.index]
        let seconds = String(rejection.retryAfterSeconds)
        let bodyLength = prepared.bodyPrefix.count + seconds.utf8.count + 1
        let policy = rejection.policy
        // One reservation and plain copies (HeadWriter): written piece by piece through
        // ByteBuffer's own calls, this answer was a dozen capacity and uniqueness checks.
        let estimate = prepared.headPrefix.count + date.readableBytes + bodyLength + HeadWriter.endHeadBytes
            + (policy == nil ? 64 : 160) + requestID.utf8Count
        buffer.writeHead(estimate: estimate) { out in
            out.write("HTTP/1.1 ")
            out.write(prepared.headPrefix)
            out.write(date)
            out.write("content-length: ")
            out.write(String(bodyLength))
            out.write("\r\nretry-after: ")
            out.write(seconds)
            out.write("\r\n")
            if let policy {
                out.write("ratelimit-policy: \"per-client\";q=")
                out.write(String(policy.quota))
                out.write(";w=")
                out.write(String(policy.windowSeconds))
                out.write("\r\nratelimit: \"per-client\";r=0;t=")
                out.write(seconds)
                out.write("\r\n")
            }
            out.endHead(requestID: requestID, close: close, http10: http10)
            if includeBody {
                out.write(prepared.bodyPrefix)
                out.write(seconds)
                out.write("}")
            }
        }
    }

    /// A shed answer's fixed bytes for one reason, in memory that is never freed.
    private struct ShedPieces {
        var headPrefix: UnsafeRawBufferPointer
        var bodyPrefix: UnsafeRawBufferPointer

        /// A copy of `text`'s bytes that lives as long as the process.
        static func forever(_ text: String) -> UnsafeRawBufferPointer {
            let bytes = Array(text.utf8)
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
            memory.copyBytes(from: bytes)
            return UnsafeRawBufferPointer(memory)
        }
    }

    /// By ``ShedReason/index`` (a dictionary keyed by the reason hashed its String raw
    /// value on every shed: ~0.5 % of all CPU on the shed path, perf 2026-12-06). The
    /// pieces depend on nothing configured, so they are made once per process (a few
    /// hundred bytes, never freed) as raw memory: copying from an array of `ByteBuffer`s
    /// retained and released the array and both buffers on every shed
    /// (`SHED=1 bench/refcount-callers.sh`). Written once, before any reader, and never
    /// again: safe to share between loops.
    private nonisolated(unsafe) static let shedPieces: UnsafeBufferPointer<ShedPieces> = {
        let pieces = ShedReason.allCases.map { reason in
            let status: HTTPResponseStatus = reason.status == 429 ? .tooManyRequests : .serviceUnavailable
            return ShedPieces(
                headPrefix: ShedPieces.forever(
                    "\(status.code) \(status.reasonPhrase)\r\ncontent-type: application/json\r\nx-fluxgate-shed: \(reason.rawValue)\r\n"),
                bodyPrefix: ShedPieces.forever(#"{"error":"\#(reason.rawValue)","message":"\#(Self.message(reason))","retry_after_s":"#))
        }
        let table = UnsafeMutableBufferPointer<ShedPieces>.allocate(capacity: pieces.count)
        _ = table.initialize(from: pieces)
        return UnsafeBufferPointer(table)
    }()

    static func message(_ reason: ShedReason) -> String {
        switch reason {
        case .clientRateLimited: "too many requests from this client"
        case .rateLimited: "the gateway's request rate limit is reached"
        case .overloaded: "the upstreams are at their target utilization; try again later"
        case .queueTimeout: "the request waited too long for a free upstream slot"
        case .noHealthyUpstream: "no upstream is ready"
        }
    }
}

extension ByteBuffer {
    /// The end of a head the gateway writes (``HeadWriter/endHead(requestID:close:http10:)``).
    mutating func endHead(requestID: RequestID?, close: Bool, http10: Bool) {
        writeHead(estimate: HeadWriter.endHeadBytes + (requestID?.utf8Count ?? 0)) { out in
            out.endHead(requestID: requestID, close: close, http10: http10)
        }
    }
}
