import FluxgateCore

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
        DemoResponse(status: status, body: #"{"error":"\#(JSONText.escape(message))"}"#, headers: headers)
    }
}
