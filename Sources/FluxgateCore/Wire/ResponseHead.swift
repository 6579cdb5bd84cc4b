/// An upstream response head located in raw bytes: where each field is and what the
/// proxy must know about framing and connection reuse. No strings are built; the
/// I/O layer copies the field bytes it keeps straight into the client's head.
public struct ResponseHead: Sendable, Equatable {
    /// A header field line: byte offsets into the head, relative to its first byte.
    public struct Field: Sendable, Equatable {
        public var kind: FieldKind
        /// The whole line including its CRLF.
        public var line: Range<Int>
        public var name: Range<Int>
        /// The value without surrounding optional whitespace.
        public var value: Range<Int>
    }

    /// Fields the proxy treats specially; everything else is `.other`.
    public typealias FieldKind = HeaderName.Kind

    /// HTTP/1.x minor version: 0 or 1.
    public var minorVersion: Int
    public var status: Int
    /// Bytes of the whole head including the blank line that ends it.
    public var length: Int
    /// Bytes of the status line including its CRLF.
    public var statusLineLength: Int
    public var fields: [Field]
    public var contentLength: Int?
    /// `Transfer-Encoding` was present; `chunkedLast` says whether its final coding is chunked.
    public var hasTransferEncoding = false
    public var chunkedLast = false
    /// `Connection: close` (or HTTP/1.0 without `keep-alive`).
    public var connectionClose = false
    /// A `Date` field was present (a proxy adds one to a response without: RFC 9110 §6.6.1).
    /// Beside the other flags, in the padding after `contentLength`: at the end it made
    /// the head 8 bytes larger (the parse microbenchmark 239 → 248 ns; here 243-245).
    public var hasDate = false
    /// Lowercased tokens listed in `Connection` other than close/keep-alive: fields to drop.
    public var connectionTokens: [String] = []

    public var isInformational: Bool { status >= 100 && status < 200 }

    /// RFC 9112 §6.3: how the body of this response is delimited, given the request method.
    public func framing(requestWasHead: Bool) -> BodyFraming {
        if requestWasHead || isInformational || status == 204 || status == 304 { return .none }
        if hasTransferEncoding { return chunkedLast ? .chunked : .untilClose }
        if let contentLength { return contentLength == 0 ? .none : .contentLength(contentLength) }
        return .untilClose
    }

    /// The head announces a body the framing rules say is not sent (a `HEAD` answer,
    /// 204, 304 with a length or a transfer coding): legitimate, but an upstream that
    /// sends the body anyway puts bytes on the connection no request asked for, which
    /// the next request would read as its response. Such a connection is not reused.
    public func announcesUnsentBody(requestWasHead: Bool) -> Bool {
        guard framing(requestWasHead: requestWasHead) == .none, !isInformational else { return false }
        return hasTransferEncoding || (contentLength ?? 0) > 0
    }

    /// Whether the upstream connection may serve another request after this response.
    /// (Transfer-Encoding with Content-Length, the smuggling signature, never gets
    /// this far: ``ResponseHeadParser`` refuses it.)
    public var keepsConnection: Bool { !connectionClose }
}

/// How a message body ends (RFC 9112 §6.3).
public enum BodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
    /// Read until the upstream closes the connection.
    case untilClose
}
