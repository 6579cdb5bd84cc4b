/// An answer from the demo app, independent of any HTTP library.
public struct DemoResponse: Sendable, Equatable {
    public var status: Int
    public var body: String
    public var headers: [(String, String)]
    public var contentType: String

    public init(status: Int, body: String, headers: [(String, String)] = [], contentType: String = "application/json") {
        self.status = status
        self.body = body
        self.headers = headers
        self.contentType = contentType
    }

    public static func == (lhs: DemoResponse, rhs: DemoResponse) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.contentType == rhs.contentType
            && lhs.headers.map { "\($0.0): \($0.1)" } == rhs.headers.map { "\($0.0): \($0.1)" }
    }

    static func json(_ status: Int, _ body: String) -> DemoResponse {
        DemoResponse(status: status, body: body)
    }

    static func error(_ status: Int, _ message: String, headers: [(String, String)] = []) -> DemoResponse {
        DemoResponse(status: status, body: #"{"error":"\#(JSON.escape(message))"}"#, headers: headers)
    }
}

/// Minimal JSON string escaping for the demo's hand-assembled answers (RFC 8259 §7).
enum JSON {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func quote(_ text: String) -> String { "\"\(escape(text))\"" }
}
