/// A client's request head located in raw bytes (``RequestHeadParser``): the request
/// line's parts and each field as byte offsets, plus what the proxy decides on —
/// framing, `Host`, `Expect`, `Connection`, `Upgrade`, the request ID — collected in
/// the same pass. No strings are built: the I/O layer copies the bytes it forwards
/// straight into the upstream head.
///
/// One value per client connection is reused for every request (`reset()` keeps the
/// fields' storage), so parsing a head allocates nothing once the connection has
/// seen its first request.
public struct RequestHead: Sendable, Equatable {
    public typealias Field = ResponseHead.Field

    public var method = RequestMethod.GET
    /// The request-target exactly as sent (origin, absolute, authority or asterisk form).
    public var target: Range<Int> = 0..<0
    /// HTTP/1.x minor version: 0 or 1.
    public var minorVersion = 1
    /// Bytes of the whole head including empty lines before it and the blank line that ends it.
    public var length = 0
    /// Offset of the request line's first byte (after empty lines a client may send
    /// between requests, RFC 9112 §2.2).
    public var start = 0
    public var fields: [Field] = []

    public var contentLength: Int?
    /// `Transfer-Encoding: chunked` (the only coding accepted on requests).
    public var chunked = false
    public var hostCount = 0
    /// The value of the (last) `Host` field.
    public var host: Range<Int>?
    /// `Expect: 100-continue`.
    public var expectsContinue = false
    /// The value of `Upgrade`, if present.
    public var upgrade: Range<Int>?
    /// `Connection` lists `upgrade` / `close` / `keep-alive`.
    public var connectionUpgrade = false
    public var connectionClose = false
    public var connectionKeepAlive = false
    /// `Connection` names other fields: they are hop-by-hop for this message
    /// (``HopByHopPolicy``) and the serializer checks every field against it.
    public var connectionNamesFields = false
    /// The value of `X-Request-ID`, if present (acceptability is checked by the caller).
    public var requestID: Range<Int>?

    /// Where an incomplete head's parse resumes: the next line to read and whether
    /// the request line is behind it (the parse is linear however the head arrives).
    var resumeAt = 0
    var requestLineDone = false

    public init() {}

    /// Ready for the next request; keeps the fields' storage.
    public mutating func reset() {
        // Field by field: `self = RequestHead()` around a kept copy of the field list
        // cost a retain and two releases per request (bench/refcount.sh). A stored
        // property added above must be reset here too — `resetClearsEveryFact` (tests)
        // compares with a fresh head after a head that sets every one.
        fields.removeAll(keepingCapacity: true)
        method = .GET
        target = 0..<0
        minorVersion = 1
        length = 0
        start = 0
        contentLength = nil
        chunked = false
        hostCount = 0
        host = nil
        expectsContinue = false
        upgrade = nil
        connectionUpgrade = false
        connectionClose = false
        connectionKeepAlive = false
        connectionNamesFields = false
        requestID = nil
        resumeAt = 0
        requestLineDone = false
    }

    public var isHTTP10: Bool { minorVersion == 0 }
    public var upgradeRequested: Bool { upgrade != nil && connectionUpgrade }
    /// RFC 9112 §9.3: HTTP/1.1 stays open unless `close`; HTTP/1.0 only with `keep-alive`.
    public var keepsAlive: Bool { !connectionClose && (!isHTTP10 || connectionKeepAlive) }
    /// A body follows the head.
    public var hasBody: Bool { chunked || (contentLength ?? 0) > 0 }
    /// The request line without its CRLF.
    public var requestLine: Range<Int> { start..<(target.upperBound + 9) }

    /// What the access log can name of a head the parser refused with `refusal`: the
    /// method and target once the request line was read (which path drew the 400 or
    /// 431), the method token alone for a 501, else nil — and nil for a 414, whose
    /// target is past the header limit (a log line stays within what a request's own
    /// can hold). Built only on the refusal path; the bytes passed the request line's
    /// checks, so the strings are visible ASCII.
    public func refusedLine(in bytes: UnsafeRawBufferPointer, for refusal: RequestHeadParser.Refusal) -> RefusedRequestLine? {
        guard refusal != .uriTooLong else { return nil }
        if requestLineDone {
            guard target.upperBound <= bytes.count else { return nil }
            return RefusedRequestLine(method: method.name, target: String(decoding: bytes[target], as: UTF8.self))
        }
        guard refusal == .methodNotImplemented, start < bytes.count else { return nil }
        // The parser read a token of at most `maxMethodBytes` up to a space from `start`.
        let end = bytes[start...].firstIndex(of: UInt8(ascii: " ")) ?? start
        guard end > start, end - start <= RequestHeadParser.maxMethodBytes else { return nil }
        return RefusedRequestLine(method: String(decoding: bytes[start..<end], as: UTF8.self), target: "-")
    }

    /// How the body is delimited (RFC 9112 §6.3: a request without either has none).
    public var framing: BodyFraming {
        if chunked { return .chunked }
        if let contentLength, contentLength > 0 { return .contentLength(contentLength) }
        return .none
    }
}

/// The methods the gateway accepts: RFC 9110's, PATCH (RFC 5789) and the WebDAV
/// ones a proxied application may use — all in llhttp's list. Anything else is 501
/// (RFC 9110 §9.1; a token longer than `RequestHeadParser.maxMethodBytes` is 400);
/// llhttp knows a few more (`M-SEARCH`, `NOTIFY`, `SOURCE`, …), refused here on purpose:
/// an unknown method is far more often a probe than an application.
public enum RequestMethod: UInt8, Sendable, CaseIterable {
    case GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH
    case PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK, SEARCH, REPORT, PURGE

    public var name: String {
        switch self {
        case .GET: "GET"
        case .HEAD: "HEAD"
        case .POST: "POST"
        case .PUT: "PUT"
        case .DELETE: "DELETE"
        case .CONNECT: "CONNECT"
        case .OPTIONS: "OPTIONS"
        case .TRACE: "TRACE"
        case .PATCH: "PATCH"
        case .PROPFIND: "PROPFIND"
        case .PROPPATCH: "PROPPATCH"
        case .MKCOL: "MKCOL"
        case .COPY: "COPY"
        case .MOVE: "MOVE"
        case .LOCK: "LOCK"
        case .UNLOCK: "UNLOCK"
        case .SEARCH: "SEARCH"
        case .REPORT: "REPORT"
        case .PURGE: "PURGE"
        }
    }

    /// RFC 9110 §9.2.2.
    public var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .PUT, .DELETE, .TRACE: true
        default: false
        }
    }

    /// Exact, case-sensitive (RFC 9110 §9.1: method names are case-sensitive).
    static func parse(_ bytes: UnsafeRawBufferPointer) -> RequestMethod? {
        // The common three by length and first byte; the rest by comparing names.
        switch bytes.count {
        case 3 where bytes[0] == UInt8(ascii: "G") && bytes[1] == UInt8(ascii: "E") && bytes[2] == UInt8(ascii: "T"): return .GET
        case 4 where bytes[0] == UInt8(ascii: "P") && bytes[1] == UInt8(ascii: "O") && bytes[2] == UInt8(ascii: "S")
            && bytes[3] == UInt8(ascii: "T"):
            return .POST
        default:
            for method in allCases where method.name.utf8.count == bytes.count && method.name.utf8.elementsEqual(bytes) {
                return method
            }
            return nil
        }
    }
}

/// What an access-log line can say about a request refused mid-head: see
/// ``RequestHead/refusedLine(in:for:)``.
public struct RefusedRequestLine: Sendable, Equatable {
    public var method: String
    public var target: String

    public init(method: String, target: String) {
        self.method = method
        self.target = target
    }
}
