/// JSON string escaping for hand-assembled JSON (RFC 8259 §7): the demo's answers and
/// the access log's JSON lines. Control characters (and DEL, which a terminal would
/// act on) become `\u00XX`.
public enum JSONText {
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20 || c.value == 0x7F:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `text` as a JSON string literal, quotes included.
    public static func quote(_ text: String) -> String { "\"\(escape(text))\"" }
}
