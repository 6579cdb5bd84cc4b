import FluxgateCore
import Foundation

/// The Fluxor API's routes (docs/DEMO_UPSTREAM.md, "Endpoints") as a function of the request and the instance's
/// state. No sockets and no clock reads: the time comes in with the request, so every
/// contract is testable without a server.
public struct DemoRouter: Sendable {
    public struct Request: Sendable {
        public var method: String
        /// The path without the query.
        public var path: String
        public var body: [UInt8]
        public var authorization: String?
        /// Admin endpoints answer only clients on the loopback interface.
        public var fromLoopback: Bool

        public init(method: String, path: String, body: [UInt8] = [], authorization: String? = nil, fromLoopback: Bool = true) {
            self.method = method
            self.path = path
            self.body = body
            self.authorization = authorization
            self.fromLoopback = fromLoopback
        }
    }

    public static let version = "1.0.0"
    public static let tokenLifetime = 86_400
    public let state: DemoState
    public let maxBodyBytes: Int
    let tokens: HS256Token

    public init(state: DemoState, jwtSecret: String, maxBodyBytes: Int = 1_048_576) {
        self.state = state
        self.maxBodyBytes = maxBodyBytes
        self.tokens = HS256Token(secret: jwtSecret)
    }

    public var instance: String { state.instance }

    /// Fixed routes and their methods, for 405 answers with `Allow`.
    static let routes: [String: [String]] = [
        "/": ["GET"], "/health": ["GET"], "/live": ["GET"], "/ready": ["GET"], "/api/status": ["GET"],
        "/api/echo": ["POST", "PUT"], "/api/auth/login": ["POST"], "/api/auth/register": ["POST"],
        "/api/users": ["GET", "POST"], "/api/metrics": ["GET"], "/metrics": ["GET"],
        "/admin/health/fail": ["POST"], "/admin/health/recover": ["POST"],
    ]

    public func respond(to request: Request, unixTime: Int) -> DemoResponse {
        let method = request.method == "HEAD" ? "GET" : request.method
        if request.path.hasPrefix("/api/users/") {
            guard method == "GET" else { return methodNotAllowed(["GET"]) }
            return user(String(request.path.dropFirst("/api/users/".count)))
        }
        guard let allowed = Self.routes[request.path] else { return .error(404, "not found") }
        guard allowed.contains(method) else { return methodNotAllowed(allowed) }
        switch (method, request.path) {
        case ("GET", "/"):
            return .json(200, #"{"message":"Welcome to Fluxor API","version":"\#(Self.version)","instance":\#(JSONText.quote(instance))}"#)
        case ("GET", "/health"), ("GET", "/live"):
            let healthy = !state.isFailingHealth
            return .json(
                healthy ? 200 : 503,
                #"{"status":"\#(healthy ? "healthy" : "unhealthy")","service":"fluxor-demo","instance":\#(JSONText.quote(instance)),"timestamp":\#(unixTime)}"#)
        case ("GET", "/ready"):
            return ready()
        case ("GET", "/api/status"):
            return .json(200, #"{"status":"ok","time":\#(unixTime)}"#)
        case ("POST", "/api/echo"), ("PUT", "/api/echo"):
            return echo(request.body)
        case ("POST", "/api/auth/login"):
            return login(request.body, unixTime: unixTime)
        case ("POST", "/api/auth/register"):
            return register(request.body)
        case ("GET", "/api/users"):
            return listUsers(authorization: request.authorization, unixTime: unixTime)
        case ("POST", "/api/users"):
            return createUser(request.body)
        case ("GET", "/api/metrics"):
            return metrics()
        case ("GET", "/metrics"):
            return DemoResponse(status: 200, body: state.registry.emitToString(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case ("POST", "/admin/health/fail"), ("POST", "/admin/health/recover"):
            guard request.fromLoopback else { return .error(403, "admin endpoints answer loopback clients only") }
            state.setFailingHealth(request.path.hasSuffix("fail"))
            return .json(200, #"{"healthy":\#(!state.isFailingHealth),"instance":\#(JSONText.quote(instance))}"#)
        default:
            return .error(404, "not found")
        }
    }

    func methodNotAllowed(_ allowed: [String]) -> DemoResponse {
        .error(405, "method not allowed", headers: [("allow", allowed.joined(separator: ", "))])
    }

    /// Fluxor's readiness rule: not ready at 90 % of the instance's own capacity.
    func ready() -> DemoResponse {
        let inFlight = state.inFlight
        let utilization = state.capacity > 0 ? Double(inFlight) / Double(state.capacity) : 0
        let ready = utilization < 0.9 && !state.isFailingHealth
        let rounded = (utilization * 1000).rounded() / 1000
        return .json(
            ready ? 200 : 503,
            #"{"ready":\#(ready),"checks":{"server":{"ccu_utilization":\#(rounded),"queue_utilization":0}}}"#)
    }

    /// `POST /api/echo`: the body must be a JSON object; it comes back verbatim inside
    /// the envelope (checked by ``JSONValidator``, not decoded and re-encoded).
    func echo(_ body: [UInt8]) -> DemoResponse {
        if body.count > maxBodyBytes { return .error(413, "body too large") }
        guard String(validating: body, as: UTF8.self) != nil, body.withUnsafeBytes(JSONValidator.isObject) else {
            return .error(400, "invalid json")
        }
        // JSON whitespace is four ASCII bytes (RFC 8259 §2); trimming bytes avoids a
        // Foundation UTF-16 round trip that cost more than the parse itself.
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        let start = body.firstIndex { !isSpace($0) } ?? body.endIndex
        let end = body.lastIndex { !isSpace($0) }.map { $0 + 1 } ?? start
        let text = String(decoding: body[start..<end], as: UTF8.self)
        return .json(200, #"{"echo":\#(text),"message":"Echo successful"}"#)
    }

    func login(_ body: [UInt8], unixTime: Int) -> DemoResponse {
        guard let object = Self.object(body), let email = Self.email(object["email"]) else {
            return .error(400, "a JSON object with a valid email is required")
        }
        let token = tokens.sign(subject: email, issuedAt: unixTime, lifetime: Self.tokenLifetime)
        return .json(200, #"{"token":"\#(token)","expires_in":\#(Self.tokenLifetime)}"#)
    }

    func register(_ body: [UInt8]) -> DemoResponse {
        guard let object = Self.object(body), let email = Self.email(object["email"]) else {
            return .error(400, "a JSON object with a valid email is required")
        }
        let name = (object["name"] as? String) ?? String(email.prefix { $0 != "@" })
        return addUser(name: name, email: email) { user in
            .json(201, #"{"message":"User registered successfully","user":{"id":\#(user.id),"email":\#(JSONText.quote(user.email))}}"#)
        }
    }

    func createUser(_ body: [UInt8]) -> DemoResponse {
        guard let object = Self.object(body), let name = object["name"] as? String, !name.isEmpty, name.count <= 200,
            let email = Self.email(object["email"])
        else {
            return .error(400, "a JSON object with name and a valid email is required")
        }
        return addUser(name: name, email: email) { user in .json(201, Self.userJSON(user)) }
    }

    private func addUser(name: String, email: String, answer: (UserStore.User) -> DemoResponse) -> DemoResponse {
        let result = state.withUsers { store in Result { () throws(UserStore.Failure) in try store.add(name: name, email: email) } }
        switch result {
        case .success(let user): return answer(user)
        case .failure(.duplicateEmail): return .error(409, "email already registered")
        case .failure(.full): return .error(507, "user store is full")
        }
    }

    func listUsers(authorization: String?, unixTime: Int) -> DemoResponse {
        let challenge = [("www-authenticate", #"Bearer realm="fluxor-demo""#)]
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
            return .error(401, "missing bearer token", headers: challenge)
        }
        do {
            _ = try tokens.verify(String(authorization.dropFirst(7)), now: unixTime)
        } catch {
            return .error(401, "invalid token", headers: [("www-authenticate", #"Bearer realm="fluxor-demo", error="invalid_token""#)])
        }
        let users = state.withUsers { $0.list() }
        return .json(200, #"{"users":[\#(users.map(Self.userJSON).joined(separator: ","))]}"#)
    }

    func user(_ idText: String) -> DemoResponse {
        guard let id = Int(idText), let user = state.withUsers({ $0.user(id: id) }) else {
            return .error(404, "user not found")
        }
        return .json(200, Self.userJSON(user))
    }

    func metrics() -> DemoResponse {
        let counts = state.counts
        let inFlight = state.inFlight
        let utilization = (Double(inFlight) / Double(max(1, state.capacity)) * 1000).rounded() / 1000
        return .json(
            200,
            #"{"total":\#(counts.total),"successful":\#(counts.successful),"error":\#(counts.error),"rejected":\#(counts.rejected),"in_flight":\#(inFlight),"capacity":\#(state.capacity),"utilization":\#(utilization),"instance":\#(JSONText.quote(instance))}"#)
    }

    static func userJSON(_ user: UserStore.User) -> String {
        #"{"id":\#(user.id),"name":\#(JSONText.quote(user.name)),"email":\#(JSONText.quote(user.email))}"#
    }

    static func object(_ body: [UInt8]) -> [String: Any]? {
        guard !body.isEmpty else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    /// A plausible address: one `@`, something on both sides, at most 254 bytes.
    static func email(_ value: Any?) -> String? {
        guard let text = value as? String, text.utf8.count <= 254 else { return nil }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !text.contains(where: \.isWhitespace) else { return nil }
        return text
    }
}
