/// A strict parser for client request heads (RFC 9112 §2-§6), the gateway's own
/// since docs/PERFORMANCE.md's profile showed NIOHTTP1's per-request
/// `HTTPRequestHead`/`HTTPHeaders` and pipeline hop as most of the user time left.
///
/// It faces untrusted input, so it refuses everything llhttp (NIOHTTP1's parser, in
/// its strict default) refuses — the differential test and the fuzzer
/// (`Fuzz/run.sh`) hold it to that — and is stricter where being lenient has only
/// ever served attackers. Refused (docs/SECURITY.md lists them with their answers):
/// - a method outside ``RequestMethod`` (case-sensitive; 501 when it is a token of at
///   most 32 bytes followed by a space, else 400);
/// - anything but exactly one SP between method, target and `HTTP/1.0`/`HTTP/1.1`;
/// - a target with a byte outside visible ASCII (`%`-encode it), a `#` fragment, a
///   scheme other than http/https or no authority after `//`, `*` other than with
///   OPTIONS, an authority-form target other than with CONNECT;  *stricter than llhttp*
/// - an absolute-form authority with bytes a host cannot hold (llhttp refuses them
///   too) or with userinfo (`user@host`; llhttp accepts one `@`);         *stricter*
/// - a bare LF, a CR not followed by LF, NUL or another control byte in a line
///   (HTAB allowed in values), obs-fold continuation lines;
/// - a field name that is not a token, whitespace before the colon, no colon;
/// - `Content-Length` that is not 1*DIGIT (SP around it allowed, HTAB not), repeated
///   (even with the same value) or overflowing;
/// - `Transfer-Encoding` other than exactly `chunked` (repeated, or with other
///   codings — nginx answers those 501), on HTTP/1.0 (RFC 9112 §6.1), or with
///   `Content-Length`;                                                       *stricter*
/// - a `Host` value with bytes a host cannot hold (RFC 3986 §3.2.2), or whose shape
///   is not `host[:port]` as ``HostSyntax`` reads it (`a..b`, `h:x`, `[::1`); the same
///   for an absolute-form authority, which must not be empty either;       *stricter*
/// - a head longer than `maxLength` bytes: 414 when its request line alone is (RFC 9110
///   §15.5.15; nginx answers an overlong request line 414 too), else 431.
///
/// Empty lines before the request line are skipped (RFC 9112 §2.2, as llhttp does).
/// Parsing resumes where the last complete line ended, so a head that arrives a
/// byte at a time costs linear time.
public enum RequestHeadParser {
    /// A longer first token is no method the gateway could know (the longest is 9).
    static let maxMethodBytes = 32

    public enum Outcome: Sendable, Equatable {
        /// More bytes are needed; what arrived so far is valid.
        case incomplete
        /// `head` is filled in; `head.length` bytes belong to it.
        case complete
        case invalid(Refusal)
    }

    public enum Refusal: Sendable, Equatable, Error {
        /// Longer than the limit: 431.
        case tooLarge
        /// The request line alone is longer than the limit: 414.
        case uriTooLong
        /// More fields than `limits.max_header_count`: 431. Never returned by the parser
        /// (llhttp has no count limit, and the parser refuses exactly what llhttp
        /// refuses); the gateway counts the fields of a parsed head and refuses with it.
        case tooManyFields
        /// A well-formed version whose major number is above 1 (`HTTP/2.0`, what an
        /// HTTP/2 client sends in its cleartext preface): 505, as nginx answers it (RFC
        /// 9110 §15.6.6). llhttp refuses these too; the status tells the client why.
        case versionNotSupported
        /// A method token outside ``RequestMethod`` (`BREW`, or `get`: methods are
        /// case-sensitive): 501, as RFC 9110 §9.1 asks of a server that does not
        /// recognize the method. llhttp refuses these too.
        case methodNotImplemented
        /// Malformed: 400, with the reason for logs and tests.
        case malformed(String)
    }

    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let tab: UInt8 = 0x09

    /// Parses (or resumes parsing) the head at the start of `bytes` into `head`,
    /// which must be fresh (``RequestHead/reset()``) for a new request and untouched
    /// between the calls for one head.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxLength: Int = 16_384, into head: inout RequestHead) -> Outcome {
        let outcome = parseLines(bytes, into: &head)
        switch outcome {
        case .complete:
            return head.length - head.start > maxLength ? .invalid(overLimit(head, maxLength)) : .complete
        case .incomplete:
            return bytes.count - head.start > maxLength ? .invalid(overLimit(head, maxLength)) : .incomplete
        case .invalid:
            return outcome
        }
    }

    /// 414 when the request line alone (as far as it arrived) is past the limit, else 431.
    private static func overLimit(_ head: RequestHead, _ maxLength: Int) -> Refusal {
        !head.requestLineDone || head.target.upperBound - head.start > maxLength ? .uriTooLong : .tooLarge
    }

    private static func parseLines(_ bytes: UnsafeRawBufferPointer, into head: inout RequestHead) -> Outcome {
        let count = bytes.count
        var index = head.resumeAt
        if !head.requestLineDone {
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            while index < count && bytes[index] == cr {
                guard index + 1 < count else { return .incomplete }
                guard bytes[index + 1] == lf else { return .invalid(.malformed("CR without LF")) }
                index += 2
                if index > 64 { return .invalid(.malformed("too many empty lines before the request")) }
            }
            head.start = index
            switch requestLine(bytes, from: index, into: &head) {
            case .success(let next):
                index = next
                head.requestLineDone = true
                head.resumeAt = next
            case .failure(let problem):
                return problem
            }
        }
        while true {
            guard index < count else { return .incomplete }
            let first = bytes[index]
            if first == cr {
                guard index + 1 < count else { return .incomplete }
                guard bytes[index + 1] == lf else { return .invalid(.malformed("CR without LF")) }
                head.length = index + 2
                return finish(bytes, &head)
            }
            if first == sp || first == tab { return .invalid(.malformed("obsolete line folding")) }
            let nameStart = index
            while index < count && HeaderName.isTokenByte(bytes[index]) { index += 1 }
            guard index < count else { return .incomplete }
            guard bytes[index] == UInt8(ascii: ":") else { return .invalid(.malformed("header name is not a token followed by a colon")) }
            guard index > nameStart else { return .invalid(.malformed("empty header name")) }
            let colon = index
            index += 1
            // The value: HTAB, SP, visible ASCII, obs-text; up to CR.
            index = ByteScan.firstControlExceptTab(in: bytes, from: index)
            guard index < count else { return .incomplete }
            guard bytes[index] == cr else { return .invalid(.malformed("control byte or bare LF in a header value")) }
            guard index + 1 < count else { return .incomplete }
            guard bytes[index + 1] == lf else { return .invalid(.malformed("CR without LF")) }
            let lineEnd = index + 2
            var valueStart = colon + 1
            var valueEnd = index
            while valueStart < valueEnd && (bytes[valueStart] == sp || bytes[valueStart] == tab) { valueStart += 1 }
            while valueEnd > valueStart && (bytes[valueEnd - 1] == sp || bytes[valueEnd - 1] == tab) { valueEnd -= 1 }
            if let problem = field(bytes, name: nameStart..<colon, value: valueStart..<valueEnd, line: nameStart..<lineEnd, into: &head) {
                return problem
            }
            index = lineEnd
            head.resumeAt = lineEnd
        }
    }

    private enum LineResult {
        case success(Int)
        case failure(Outcome)
    }

    /// `method SP request-target SP HTTP-version CRLF`.
    private static func requestLine(_ bytes: UnsafeRawBufferPointer, from start: Int, into head: inout RequestHead) -> LineResult {
        let count = bytes.count
        var index = start
        while index < count && HeaderName.isTokenByte(bytes[index]) && index - start < maxMethodBytes { index += 1 }
        guard index < count else { return .failure(.incomplete) }
        guard bytes[index] == sp, index > start else {
            return .failure(.invalid(.malformed("no method token of at most \(maxMethodBytes) bytes followed by one space")))
        }
        guard let method = RequestMethod.parse(UnsafeRawBufferPointer(rebasing: bytes[start..<index])) else {
            // HTTP/2's connection preface (a client with prior knowledge, RFC 9113
            // §3.4) is a version this port does not speak, not an unknown method: 505,
            // as for `GET / HTTP/2.0` (it was 501 until 2026-12-05).
            switch http2Preface(bytes, from: start) {
            case true?: return .failure(.invalid(.versionNotSupported))
            case nil: return .failure(.incomplete)
            case false?: break
            }
            // A method by the grammar, but not one the gateway forwards: RFC 9110 §9.1.
            return .failure(.invalid(.methodNotImplemented))
        }
        head.method = method
        index += 1
        let targetStart = index
        while index < count && bytes[index] > sp && bytes[index] < 0x7F { index += 1 }
        guard index < count else { return .failure(.incomplete) }
        guard bytes[index] == sp, index > targetStart else {
            return .failure(.invalid(.malformed("request target has a byte outside visible ASCII, or no single space after it")))
        }
        head.target = targetStart..<index
        if let problem = checkTarget(UnsafeRawBufferPointer(rebasing: bytes[head.target]), method: method) {
            return .failure(.invalid(.malformed(problem)))
        }
        index += 1
        // "HTTP/1.x" CR LF, checked as far as it has arrived.
        let version: StaticString = "HTTP/1."
        for offset in 0..<7 {
            guard index + offset < count else { return .failure(.incomplete) }
            guard bytes[index + offset] == version.utf8Start[offset] else {
                if offset == 5 { return laterMajorVersion(bytes, at: index) }
                return .failure(.invalid(.malformed("version is not HTTP/1.0 or HTTP/1.1")))
            }
        }
        guard index + 7 < count else { return .failure(.incomplete) }
        let minor = bytes[index + 7]
        guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else {
            return .failure(.invalid(.malformed("version is not HTTP/1.0 or HTTP/1.1")))
        }
        head.minorVersion = Int(minor - UInt8(ascii: "0"))
        guard index + 8 < count else { return .failure(.incomplete) }
        guard bytes[index + 8] == cr else { return .failure(.invalid(.malformed("request line does not end after the version"))) }
        guard index + 9 < count else { return .failure(.incomplete) }
        guard bytes[index + 9] == lf else { return .failure(.invalid(.malformed("CR without LF"))) }
        return .success(index + 10)
    }

    /// Whether the bytes from `start` begin with `PRI * HTTP/2.0` CR LF; nil while
    /// what has arrived is a shorter part of it.
    private static func http2Preface(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Bool? {
        let preface: StaticString = "PRI * HTTP/2.0\r\n"
        let available = min(bytes.count - start, preface.utf8CodeUnitCount)
        guard (0..<available).allSatisfy({ bytes[start + $0] == preface.utf8Start[$0] }) else { return false }
        return available == preface.utf8CodeUnitCount ? true : nil
    }

    /// `HTTP/` at `start` and no `1` after it: ``Refusal/versionNotSupported`` when the
    /// rest of the line is a well-formed later version (`HTTP/2.0` CR LF), else malformed.
    private static func laterMajorVersion(_ bytes: UnsafeRawBufferPointer, at start: Int) -> LineResult {
        let malformed = LineResult.failure(.invalid(.malformed("version is not HTTP/1.0 or HTTP/1.1")))
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        let expected: [(UInt8) -> Bool] = [
            { $0 >= UInt8(ascii: "2") && $0 <= UInt8(ascii: "9") }, { $0 == UInt8(ascii: ".") }, isDigit, { $0 == cr }, { $0 == lf },
        ]
        for (offset, matches) in expected.enumerated() {
            guard start + 5 + offset < bytes.count else { return .failure(.incomplete) }
            guard matches(bytes[start + 5 + offset]) else { return malformed }
        }
        return .failure(.invalid(.versionNotSupported))
    }

    /// The target's form against its method (RFC 9112 §3.2).
    static func checkTarget(_ target: UnsafeRawBufferPointer, method: RequestMethod) -> String? {
        if target.contains(UInt8(ascii: "#")) { return "fragment in the request target" }
        if method == .CONNECT {
            // authority-form (host:port, host bytes only: llhttp refuses others — found by
            // the fuzzer); answered 405 anyway, but parsed so the answer is right.
            return target.allSatisfy(isHostByte) ? nil : "CONNECT needs an authority-form target"
        }
        switch target[0] {
        case UInt8(ascii: "/"):
            return nil
        case UInt8(ascii: "*"):
            return target.count == 1 && method == .OPTIONS ? nil : "asterisk-form target outside OPTIONS *"
        default:
            // absolute-form: http:// or https:// and an authority.
            var index = 0
            while index < target.count && target[index] != UInt8(ascii: ":") { index += 1 }
            let scheme = UnsafeRawBufferPointer(rebasing: target[0..<index])
            guard HeaderName.equalsLowercase(scheme, "http") || HeaderName.equalsLowercase(scheme, "https") else {
                return "request target is neither a path nor an http(s) URL"
            }
            guard target.count > index + 3, target[index + 1] == UInt8(ascii: "/"), target[index + 2] == UInt8(ascii: "/") else {
                return "absolute-form target without an authority"
            }
            // The authority (up to the path or query): host bytes only. llhttp refuses
            // `"<>\^`{|}` there and a second `@` (both found by the fuzzer, Fuzz/run.sh);
            // userinfo (`user@`) is refused altogether — RFC 9110 §4.2.4: senders must not
            // generate it for http(s), and it only ever served to disguise a host.
            var authority = index + 3
            while authority < target.count && target[authority] != UInt8(ascii: "/") && target[authority] != UInt8(ascii: "?") {
                guard isHostByte(target[authority]) else { return "absolute-form authority holds bytes a host cannot (or userinfo)" }
                authority += 1
            }
            // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid.
            guard authority > index + 3 else { return "absolute-form target without a host" }
            if let problem = HostSyntax.problem(UnsafeRawBufferPointer(rebasing: target[(index + 3)..<authority])) {
                return "absolute-form authority \(problem)"
            }
            return nil
        }
    }

    /// Records one field line and what it means to the proxy.
    private static func field(
        _ bytes: UnsafeRawBufferPointer, name: Range<Int>, value: Range<Int>, line: Range<Int>, into head: inout RequestHead
    ) -> Outcome? {
        let kind = HeaderName.classify(UnsafeRawBufferPointer(rebasing: bytes[name]))
        let text = UnsafeRawBufferPointer(rebasing: bytes[value])
        switch kind {
        case .other:
            break
        case .contentLength:
            let raw = UnsafeRawBufferPointer(rebasing: bytes[(name.upperBound + 1)..<(line.upperBound - 2)])
            guard !raw.contains(tab), let length = ResponseHeadParser.parseContentLength(text) else {
                return .invalid(.malformed("invalid Content-Length"))
            }
            if head.contentLength != nil { return .invalid(.malformed("repeated Content-Length")) }
            head.contentLength = length
        case .transferEncoding:
            guard !head.chunked, HeaderName.equalsLowercase(text, "chunked") else {
                return .invalid(.malformed("Transfer-Encoding other than a single chunked"))
            }
            head.chunked = true
        case .host:
            head.hostCount += 1
            head.host = value
            // One pass: `HostSyntax` checks every byte against the host byte set as it reads the shape.
            if let problem = HostSyntax.problem(text) { return .invalid(.malformed("Host \(problem)")) }
        case .expect:
            if HeaderName.equalsLowercase(text, "100-continue") { head.expectsContinue = true }
        case .upgrade:
            head.upgrade = value
        case .connection:
            ResponseHeadParser.forEachToken(text) { token in
                if HeaderName.equalsLowercase(token, "close") {
                    head.connectionClose = true
                } else if HeaderName.equalsLowercase(token, "keep-alive") {
                    head.connectionKeepAlive = true
                } else if HeaderName.equalsLowercase(token, "upgrade") {
                    head.connectionUpgrade = true
                } else {
                    head.connectionNamesFields = true
                }
            }
        case .requestID:
            head.requestID = value
        default:
            break
        }
        head.fields.append(.init(kind: kind, line: line, name: name, value: value))
        return nil
    }

    /// After the blank line: rules that need the whole head.
    private static func finish(_ bytes: UnsafeRawBufferPointer, _ head: inout RequestHead) -> Outcome {
        if head.chunked && head.contentLength != nil {
            // RFC 9112 §6.3 ¶3: the smuggling signature; llhttp refuses it too.
            return .invalid(.malformed("both Transfer-Encoding and Content-Length"))
        }
        if head.chunked && head.isHTTP10 { return .invalid(.malformed("Transfer-Encoding in an HTTP/1.0 request")) }
        return .complete
    }

    /// RFC 3986 §3.2.2 host and §3.2.3 port: unreserved, sub-delims, `%`, `:`, `[`, `]`.
    static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "$"),
            UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"),
            UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="), UInt8(ascii: "%"), UInt8(ascii: ":"), UInt8(ascii: "["),
            UInt8(ascii: "]"):
            return true
        default:
            return false
        }
    }
}
