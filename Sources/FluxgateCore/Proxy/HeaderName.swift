/// Byte-level helpers for HTTP field names (RFC 9110 §5.1), used without building
/// lowercased copies on the request path.
public enum HeaderName {
    /// RFC 9110 §5.6.2 `token`.
    public static func isToken<S: StringProtocol>(_ text: S) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy(isTokenByte)
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// ASCII case-insensitive equality; `lowercase` must already be lowercase.
    @inlinable
    public static func equals(_ name: String, lowercase: StaticString) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
            let expected = lowercase.utf8Start
            for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] {
                // `| 0x20` folds A-Z onto a-z; the non-letters used in header names
                // ('-', digits) already have the bit set, so they compare unchanged.
                return false
            }
            return true
        }
    }
}
