/// Which request and response fields a proxy must not forward (RFC 9110 §7.6.1).
///
/// Removed: `Connection` and every field it names, plus the fields that are
/// hop-by-hop by definition or by long practice: `Keep-Alive`, `Proxy-Connection`,
/// `TE`, `Trailer`, `Upgrade`. `Transfer-Encoding` is hop-by-hop too, but the I/O layer
/// decodes and re-encodes framing itself, so it is handled there rather than here.
///
/// A field named in `Connection` is removed only if it is not needed for framing or
/// routing: `Connection: content-length` (or `host`, `transfer-encoding`) would
/// otherwise let a client make the gateway and the upstream disagree on where a
/// message ends, the classic hop-by-hop abuse behind request smuggling.
public struct HopByHopPolicy: Sendable {
    /// Lowercased tokens listed in the message's `Connection` fields.
    public private(set) var connectionTokens: [String] = []

    public init() {}

    /// Collects the tokens of one `Connection` field value (comma-separated).
    public mutating func noteConnectionHeader(_ value: String) {
        for token in value.split(separator: ",") {
            let trimmed = token.trimmingSpaces()
            if !trimmed.isEmpty { connectionTokens.append(trimmed.lowercased()) }
        }
    }

    /// True if `name` must not be forwarded.
    public func isHopByHop(_ name: String) -> Bool {
        if Self.isAlwaysHopByHop(name) { return true }
        if connectionTokens.isEmpty { return false }
        if Self.isProtected(name) { return false }
        let lowered = name.lowercased()
        return connectionTokens.contains(lowered)
    }

    /// Whether the message asked for the connection to close (`Connection: close`).
    public var requestsClose: Bool { connectionTokens.contains("close") }

    public static func isAlwaysHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return HeaderName.equals(name, lowercase: "te")
        case 7: return HeaderName.equals(name, lowercase: "trailer") || HeaderName.equals(name, lowercase: "upgrade")
        case 10: return HeaderName.equals(name, lowercase: "connection") || HeaderName.equals(name, lowercase: "keep-alive")
        case 16: return HeaderName.equals(name, lowercase: "proxy-connection")
        default: return false
        }
    }

    /// Fields a `Connection` token may not remove.
    static func isProtected(_ name: String) -> Bool {
        HeaderName.equals(name, lowercase: "content-length") || HeaderName.equals(name, lowercase: "transfer-encoding")
            || HeaderName.equals(name, lowercase: "host")
    }
}
