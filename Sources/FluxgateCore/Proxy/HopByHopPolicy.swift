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

    /// True if a field of this name and kind must not be forwarded.
    public func isHopByHop(_ name: String, kind: HeaderName.Kind) -> Bool {
        if kind.isAlwaysHopByHop { return true }
        if connectionTokens.isEmpty || kind.isProtected { return false }
        return connectionTokens.contains(name.lowercased())
    }

    public func isHopByHop(_ name: String) -> Bool {
        isHopByHop(name, kind: HeaderName.classify(name))
    }

    /// Whether the message asked for the connection to close (`Connection: close`).
    public var requestsClose: Bool { connectionTokens.contains("close") }

    /// Whether the connection stays open after this message: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive` (RFC 9112 §9.3).
    public func keepsAlive(http10: Bool) -> Bool {
        if requestsClose { return false }
        return !http10 || connectionTokens.contains("keep-alive")
    }
}
