/// The shape of a `Host` value and of an absolute-form target's authority:
/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2-§3.2.3), read as a name a
/// server can have — the upstream and the app behind it route, log and build links
/// on it, so what they might read two ways is refused here with a 400 instead.
///
/// Refused: a byte outside the host set (``RequestHeadParser/isHostByte(_:)``, checked
/// here as the shape is read — the parser makes no separate pass), and (all of which
/// nginx also answers 400, except as marked):
/// - an empty label: `a..b`, `.a`, `.` (a single trailing dot, `example.com.`, is a
///   fully qualified name and allowed, as nginx allows it);    *stricter: nginx accepts `.a`*
/// - a port that is not 1-5 digits up to 65535 (RFC 3986's `port = *DIGIT`; an
///   empty port after the colon is allowed, as the grammar allows);   *stricter*
/// - `:`, `[` or `]` in a name, a `%` not followed by two hex digits;   *stricter*
/// - an IP literal without its `]`, empty, or followed by anything but a port;
///   *stricter: nginx accepts `[::1`*
/// - no host before the port (`:80`).
/// An empty value is left to the caller: an empty `Host` is allowed (RFC 9112 §3.3
/// lets a server use its default; nginx refuses it), an empty authority in an
/// absolute-form target is not (RFC 9110 §4.2.1).
public enum HostSyntax {
    /// What is wrong with `text` as `uri-host [ ":" port ]`, or nil. Empty is fine here.
    public static func problem(_ text: UnsafeRawBufferPointer) -> String? {
        let count = text.count
        guard count > 0 else { return nil }
        var index = 0
        if text[0] == UInt8(ascii: "[") {
            index = 1
            while index < count && text[index] != UInt8(ascii: "]") {
                guard isLiteralByte(text[index]) else { return "holds bytes an IP literal cannot" }
                index += 1
            }
            guard index < count else { return "has an IP literal without its closing ]" }
            guard index > 1 else { return "has an empty IP literal" }
            index += 1
            guard index == count || text[index] == UInt8(ascii: ":") else { return "has bytes after its IP literal" }
        } else {
            var labelStart = 0
            while index < count && text[index] != UInt8(ascii: ":") {
                let byte = text[index]
                if byte == UInt8(ascii: ".") {
                    if index == labelStart { return "has an empty label" }
                    labelStart = index + 1
                } else if byte == UInt8(ascii: "%") {
                    guard index + 2 < count, isHexDigit(text[index + 1]), isHexDigit(text[index + 2]) else {
                        return "has a % not followed by two hex digits"
                    }
                    index += 2
                } else if !isNameByte(byte) {
                    return "holds bytes a host name cannot"
                }
                index += 1
            }
            guard index > 0 else { return "has no host before its port" }
        }
        guard index < count else { return nil }
        // text[index] is ":": the port, digits only.
        let digits = count - index - 1
        guard digits <= 5 else { return "has a port that is not a number up to 65535" }
        var port = 0
        for byte in text[(index + 1)...] {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return "has a port that is not a number up to 65535" }
            port = port * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return port <= 65_535 ? nil : "has a port that is not a number up to 65535"
    }

    /// RFC 3986 reg-name (and IPv4address): unreserved and sub-delims; `%` is read apart.
    static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "%"): false
        default: RequestHeadParser.isHostByte(byte)
        }
    }

    /// Inside `[` `]`: IPv6address and IPvFuture need hex digits, `:`, `.`, `v`,
    /// unreserved and sub-delims — never `%` (RFC 6874's zone IDs are not sent in Host).
    static func isLiteralByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ":") || isNameByte(byte)
    }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): true
        default: false
        }
    }
}
