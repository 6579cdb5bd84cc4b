/// Byte-level helpers for HTTP field names (RFC 9110 §5.1), shared by the request
/// side (names from NIOHTTP1's decoder, as `String`) and the response side (raw
/// bytes): one classifier, one case-insensitive comparison, no lowercased copies.
public enum HeaderName {
    /// The fields the proxy treats specially; everything else is `.other`.
    public enum Kind: Sendable, Equatable {
        case other, host, expect, connection, keepAlive, proxyConnection, te, trailer, upgrade
        /// `Date`: a response without one gets the gateway's (RFC 9110 §6.6.1). On a
        /// request it is an ordinary field.
        case date
        case requestID, contentLength, transferEncoding, forwardedFor, forwardedHost, forwardedProto
        /// What else a client can claim about where it came from: `Forwarded`
        /// (RFC 7239), `X-Real-IP`, `True-Client-IP` and every other `X-Forwarded-*`
        /// (`-Port`, `-Ssl`, `-Scheme`, `-Prefix`, `-Server`, `-Uri`, …). Dropped from a
        /// peer that is not in `trusted_proxies`, as its `X-Forwarded-For` is replaced:
        /// applications read them before `X-Forwarded-For` (by their documentation:
        /// go-chi's `RealIP` takes `True-Client-IP`, then `X-Real-IP`; Spring's
        /// `ForwardedHeaderFilter` builds its URLs from `Forwarded` first; Rack takes
        /// `X-Forwarded-Ssl: on` as https). Traefik removes `X-Real-Ip` and its
        /// `X-Forwarded-*` list from untrusted peers.
        case forwardedClaim

        /// Hop-by-hop by definition or long practice (RFC 9110 §7.6.1). Transfer-Encoding
        /// is hop-by-hop too, but framing is re-done by the proxy and handled apart.
        public var isAlwaysHopByHop: Bool {
            switch self {
            case .connection, .keepAlive, .proxyConnection, .te, .trailer, .upgrade: true
            default: false
            }
        }

        /// Fields a `Connection` token may not remove: framing and routing.
        public var isProtected: Bool {
            switch self {
            case .contentLength, .transferEncoding, .host: true
            default: false
            }
        }
    }

    /// One switch on the length, then at most two comparisons.
    public static func classify(_ name: UnsafeRawBufferPointer) -> Kind {
        switch name.count {
        case 2 where equalsLowercase(name, "te"): .te
        case 4 where equalsLowercase(name, "host"): .host
        case 4 where equalsLowercase(name, "date"): .date
        case 6 where equalsLowercase(name, "expect"): .expect
        case 7 where equalsLowercase(name, "trailer"): .trailer
        case 7 where equalsLowercase(name, "upgrade"): .upgrade
        case 10 where equalsLowercase(name, "connection"): .connection
        case 10 where equalsLowercase(name, "keep-alive"): .keepAlive
        case 12 where equalsLowercase(name, "x-request-id"): .requestID
        case 14 where equalsLowercase(name, "content-length"): .contentLength
        case 15 where equalsLowercase(name, "x-forwarded-for"): .forwardedFor
        case 16 where equalsLowercase(name, "proxy-connection"): .proxyConnection
        case 16 where equalsLowercase(name, "x-forwarded-host"): .forwardedHost
        case 17 where equalsLowercase(name, "transfer-encoding"): .transferEncoding
        case 17 where equalsLowercase(name, "x-forwarded-proto"): .forwardedProto
        case 9 where equalsLowercase(name, "forwarded") || equalsLowercase(name, "x-real-ip"): .forwardedClaim
        case 14 where equalsLowercase(name, "true-client-ip"): .forwardedClaim
        case 13... where startsWithLowercase(name, "x-forwarded-"): .forwardedClaim
        default: .other
        }
    }

    /// ASCII case-insensitive prefix test against a lowercase literal.
    public static func startsWithLowercase(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        bytes.count >= literal.utf8CodeUnitCount && equalsLowercase(UnsafeRawBufferPointer(rebasing: bytes[0..<literal.utf8CodeUnitCount]), literal)
    }

    public static func classify(_ name: String) -> Kind {
        var name = name
        return name.withUTF8 { classify(UnsafeRawBufferPointer($0)) }
    }

    /// ASCII case-insensitive equality against a lowercase literal.
    public static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        let expected = literal.utf8Start
        for index in 0..<bytes.count {
            var byte = bytes[index]
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte |= 0x20 }
            if byte != expected[index] { return false }
        }
        return true
    }

    /// ASCII case-insensitive equality against lowercase bytes (a name from the
    /// configuration, lowercased once when it was loaded).
    public static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lowercase: [UInt8]) -> Bool {
        guard bytes.count == lowercase.count else { return false }
        for index in 0..<bytes.count {
            var byte = bytes[index]
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte |= 0x20 }
            if byte != lowercase[index] { return false }
        }
        return true
    }

    public static func equals(_ name: String, lowercase: StaticString) -> Bool {
        var name = name
        return name.withUTF8 { equalsLowercase(UnsafeRawBufferPointer($0), lowercase) }
    }

    /// RFC 9110 §5.6.2 `token`.
    public static func isToken<S: StringProtocol>(_ text: S) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenByte)
    }

    /// RFC 9110 §5.6.2 `tchar`: ALPHA, DIGIT and `!#$%&'*+-.^_`|~`, as one bit per ASCII
    /// byte in two words — a search through the punctuation list walked a string's
    /// UTF-8 view for every `-` of every header name (1.3 % of the gateway's user time
    /// in a profile, docs/PERFORMANCE.md). A test checks the words against the list.
    static let tokenLow: UInt64 = 0x03ff_6cfa_0000_0000
    static let tokenHigh: UInt64 = 0x57ff_ffff_c7ff_fffe

    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        if byte < 64 { return tokenLow & (1 << UInt64(byte)) != 0 }
        if byte < 128 { return tokenHigh & (1 << UInt64(byte &- 64)) != 0 }
        return false
    }
}
