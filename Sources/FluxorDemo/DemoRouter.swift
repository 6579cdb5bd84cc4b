import Foundation

/// The Fluxor API's routes, as a pure function of the request and the instance's
/// state: no sockets, no clock reads (the time is passed in), so every contract is
/// testable without a server.
public struct DemoRouter: Sendable {
    public struct Request: Sendable {
        public var method: String
        /// The path without the query.
        public var path: String
        public var body: [UInt8]

        public init(method: String, path: String, body: [UInt8] = []) {
            self.method = method
            self.path = path
            self.body = body
        }
    }

    /// What the instance knows about its own load when it answers.
    public struct Load: Sendable {
        public var inFlight: Int
        public var capacity: Int
        public init(inFlight: Int, capacity: Int) {
            self.inFlight = inFlight
            self.capacity = capacity
        }
    }

    public static let version = "1.0.0"
    public let instance: String
    public let maxBodyBytes: Int

    public init(instance: String, maxBodyBytes: Int = 1_048_576) {
        self.instance = instance
        self.maxBodyBytes = maxBodyBytes
    }

    /// Routes whose methods are known, for 405 answers with `Allow`.
    static let routes: [String: [String]] = [
        "/": ["GET"], "/health": ["GET"], "/live": ["GET"], "/ready": ["GET"], "/api/status": ["GET"],
        "/api/echo": ["POST"],
    ]

    public func respond(to request: Request, unixTime: Int, load: Load) -> DemoResponse {
        guard let allowed = Self.routes[request.path] else {
            return .error(404, "not found")
        }
        let method = request.method == "HEAD" ? "GET" : request.method
        guard allowed.contains(method) else {
            return DemoResponse(
                status: 405, body: #"{"error":"method not allowed"}"#,
                headers: [("allow", allowed.joined(separator: ", "))])
        }
        switch request.path {
        case "/":
            return .json(200, #"{"message":"Welcome to Fluxor API","version":"\#(Self.version)","instance":"\#(instance)"}"#)
        case "/health", "/live":
            return .json(
                200, #"{"status":"healthy","service":"fluxor-demo","instance":"\#(instance)","timestamp":\#(unixTime)}"#)
        case "/ready":
            return ready(load)
        case "/api/status":
            return .json(200, #"{"status":"ok","time":\#(unixTime)}"#)
        case "/api/echo":
            return echo(request.body)
        default:
            return .error(404, "not found")
        }
    }

    /// Fluxor's readiness rule: not ready at 90 % of the instance's own capacity.
    func ready(_ load: Load) -> DemoResponse {
        let utilization = load.capacity > 0 ? Double(load.inFlight) / Double(load.capacity) : 0
        let ready = utilization < 0.9
        let rounded = (utilization * 1000).rounded() / 1000
        return .json(
            ready ? 200 : 503,
            #"{"ready":\#(ready),"checks":{"server":{"ccu_utilization":\#(rounded),"queue_utilization":0}}}"#)
    }

    /// `POST /api/echo`: the body must be a JSON object; it is returned verbatim inside
    /// the envelope (validated by JSONSerialization, not re-encoded).
    func echo(_ body: [UInt8]) -> DemoResponse {
        if body.count > maxBodyBytes { return .error(413, "body too large") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)), object is [String: Any],
            let text = String(bytes: body, encoding: .utf8)
        else {
            return .error(400, "invalid json")
        }
        return .json(200, #"{"echo":\#(text.trimmingCharacters(in: .whitespacesAndNewlines)),"message":"Echo successful"}"#)
    }
}
