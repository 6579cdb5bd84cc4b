/// JSON string escaping for hand-assembled JSON (RFC 8259 §7): the demo's answers and
/// the access log's JSON lines. `"`, `\`, `\n`, `\r`, `\t` are escaped by name, other
/// control characters and DEL (which a terminal would act on) as `\u00XX`; every other
/// byte of the UTF-8 text is kept as it is (those of multi-byte characters are ≥ 0x80).
public enum JSONText {
    public static func escape(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        appendQuoted(text, into: &out)
        return String(decoding: out.dropFirst().dropLast(), as: UTF8.self)
    }

    /// `text` as a JSON string literal, quotes included.
    public static func quote(_ text: String) -> String { "\"\(escape(text))\"" }

    /// Appends `text` as a JSON string literal, quotes included.
    public static func appendQuoted(_ text: String, into out: inout [UInt8]) {
        var text = text
        text.withUTF8 { appendQuoted(UnsafeRawBufferPointer($0), into: &out) }
    }

    /// Appends UTF-8 `bytes` as a JSON string literal, quotes included.
    public static func appendQuoted(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        func hex(_ nibble: UInt8) -> UInt8 { nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10 }
        out.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case UInt8(ascii: "\n"):
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"):
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"):
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F:
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                out.append(hex(byte >> 4))
                out.append(hex(byte & 0xF))
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
