import Foundation
import Testing

@testable import FluxorDemo

struct DemoRouterTests {
    let state = DemoState(instance: "a", capacity: 100)
    var router: DemoRouter { DemoRouter(state: state, jwtSecret: "test-secret-0123456789", maxBodyBytes: 64) }
    let now = 1_700_000_000

    func call(_ method: String, _ path: String, _ body: String = "", auth: String? = nil, loopback: Bool = true) -> DemoResponse {
        router.respond(
            to: .init(method: method, path: path, body: Array(body.utf8), authorization: auth, fromLoopback: loopback), unixTime: now)
    }

    func json(_ response: DemoResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) as? [String: Any] ?? [:]
    }

    @Test func healthAndLive() {
        let expected = #"{"status":"healthy","service":"fluxor-demo","instance":"a","timestamp":1700000000}"#
        #expect(call("GET", "/health") == DemoResponse(status: 200, body: expected))
        #expect(call("GET", "/live") == DemoResponse(status: 200, body: expected))
        #expect(call("HEAD", "/health").status == 200)
    }

    @Test func welcomeAndStatus() {
        #expect(call("GET", "/").body == #"{"message":"Welcome to Fluxor API","version":"1.0.0","instance":"a"}"#)
        #expect(call("GET", "/api/status") == DemoResponse(status: 200, body: #"{"status":"ok","time":1700000000}"#))
    }

    /// Fluxor's readiness rule: not ready from 90 % of capacity on.
    @Test(arguments: [(0, 200, "0.0"), (89, 200, "0.89"), (90, 503, "0.9"), (100, 503, "1.0")])
    func readiness(inFlight: Int, status: Int, utilization: String) {
        let state = DemoState(instance: "a", capacity: 100)
        for _ in 0..<inFlight { state.requestStarted() }
        let response = DemoRouter(state: state, jwtSecret: "test-secret-0123456789").respond(to: .init(method: "GET", path: "/ready"), unixTime: 0)
        #expect(response.status == status)
        #expect(response.body == #"{"ready":\#(status == 200),"checks":{"server":{"ccu_utilization":\#(utilization),"queue_utilization":0}}}"#)
    }

    @Test func healthSwitchFromLoopbackOnly() {
        #expect(call("POST", "/admin/health/fail", loopback: false).status == 403)
        #expect(call("GET", "/health").status == 200)
        #expect(call("POST", "/admin/health/fail").body == #"{"healthy":false,"instance":"a"}"#)
        let failing = call("GET", "/health")
        #expect(failing.status == 503)
        #expect(json(failing)["status"] as? String == "unhealthy")
        #expect(call("GET", "/live").status == 503)
        #expect(call("GET", "/ready").status == 503)
        #expect(call("POST", "/admin/health/recover").status == 200)
        #expect(call("GET", "/health").status == 200)
    }

    @Test func echoReturnsTheObject() {
        #expect(call("POST", "/api/echo", #"{"a":[1,2],"b":"x"}"#) == DemoResponse(status: 200, body: #"{"echo":{"a":[1,2],"b":"x"},"message":"Echo successful"}"#))
        #expect(call("PUT", "/api/echo", #"{"a":1}"#) == DemoResponse(status: 200, body: #"{"echo":{"a":1},"message":"Echo successful"}"#))
    }

    @Test(arguments: ["", "not json", "[1,2]", "\"text\"", "{\"a\":", "42"])
    func echoRejectsNonObjects(body: String) {
        #expect(call("POST", "/api/echo", body) == DemoResponse(status: 400, body: #"{"error":"invalid json"}"#))
    }

    @Test func echoRejectsOversizedBodies() {
        let body = #"{"k":""# + String(repeating: "x", count: 64) + #""}"#
        #expect(call("POST", "/api/echo", body).status == 413)
    }

    @Test func unknownPathsAndMethodsAreJSON() {
        #expect(call("GET", "/nope") == DemoResponse(status: 404, body: #"{"error":"not found"}"#))
        let wrong = call("GET", "/api/echo")
        #expect(wrong.status == 405)
        #expect(wrong.body == #"{"error":"method not allowed"}"#)
        #expect(wrong.headers.first?.0 == "allow" && wrong.headers.first?.1 == "POST, PUT")
        #expect(call("DELETE", "/health").status == 405)
        #expect(call("DELETE", "/api/users/1").status == 405)
    }

    // MARK: Auth and users

    @Test func loginThenListUsers() throws {
        let login = call("POST", "/api/auth/login", #"{"email":"dev@example.com","password":"x"}"#)
        #expect(login.status == 200)
        let token = try #require(json(login)["token"] as? String)
        #expect(json(login)["expires_in"] as? Int == 86_400)
        let users = call("GET", "/api/users", auth: "Bearer \(token)")
        #expect(users.status == 200)
        let list = try #require(json(users)["users"] as? [[String: Any]])
        #expect(list.map { $0["name"] as? String } == ["Alice", "Bob", "Carol"])
        #expect(list.allSatisfy { $0["id"] is Int && $0["email"] is String })
    }

    @Test(arguments: ["", "{}", #"{"email":"no-at-sign"}"#, #"{"email":42}"#, "[1]"])
    func loginNeedsAnEmail(body: String) {
        #expect(call("POST", "/api/auth/login", body).status == 400)
    }

    @Test func usersWithoutAValidTokenAre401WithAChallenge() throws {
        let signer = HS256Token(secret: "test-secret-0123456789")
        let other = HS256Token(secret: "another-secret-0123456789")
        let valid = signer.sign(subject: "a@b.c", issuedAt: now, lifetime: 60)
        let parts = valid.split(separator: ".").map(String.init)
        let cases: [String?] = [
            nil, "Basic abc", "Bearer", "Bearer not.a.jwt", "Bearer \(valid)x",
            "Bearer \(signer.sign(subject: "a@b.c", issuedAt: now - 120, lifetime: 60))",  // expired
            "Bearer \(other.sign(subject: "a@b.c", issuedAt: now, lifetime: 60))",  // wrong key
            "Bearer \(parts[0]).\(HS256Token.base64URL(Data(#"{"sub":"admin","iat":0,"exp":9999999999,"iss":"x"}"#.utf8))).\(parts[2])",  // tampered
            "Bearer \(HS256Token.base64URL(Data(#"{"alg":"none"}"#.utf8))).\(parts[1]).",  // alg none
        ]
        for auth in cases {
            let response = call("GET", "/api/users", auth: auth)
            #expect(response.status == 401, "\(auth ?? "nil")")
            #expect(response.headers.first?.0 == "www-authenticate")
            #expect(response.headers.first?.1.hasPrefix("Bearer") == true)
        }
        #expect(call("GET", "/api/users", auth: "bearer \(valid)").status == 200)
    }

    @Test func registerCreateAndFetchUsers() throws {
        let registered = call("POST", "/api/auth/register", #"{"email":"new@example.com","password":"p"}"#)
        #expect(registered.status == 201)
        #expect(json(registered)["message"] as? String == "User registered successfully")
        let user = try #require(json(registered)["user"] as? [String: Any])
        #expect(user["email"] as? String == "new@example.com")
        #expect(call("POST", "/api/auth/register", #"{"email":"NEW@example.com"}"#).status == 409)

        let created = call("POST", "/api/users", #"{"name":"Dora \"D\"","email":"dora@example.com"}"#)
        #expect(created.status == 201)
        let id = try #require(json(created)["id"] as? Int)
        let fetched = call("GET", "/api/users/\(id)")
        #expect(fetched.status == 200)
        #expect(json(fetched)["name"] as? String == #"Dora "D""#)
        #expect(call("GET", "/api/users/9999").status == 404)
        #expect(call("GET", "/api/users/abc").status == 404)
        #expect(call("POST", "/api/users", #"{"name":"x"}"#).status == 400)
    }

    @Test func userStoreIsBounded() {
        var store = UserStore(capacity: 4)
        #expect(store.users.count == 3)
        #expect(throws: Never.self) { try store.add(name: "d", email: "d@x.io") }
        #expect(throws: UserStore.Failure.full) { try store.add(name: "e", email: "e@x.io") }
    }

    @Test func metricsAsJSONAndPrometheusText() {
        state.requestStarted()
        state.requestFinished(status: 200)
        state.requestStarted()
        state.requestFinished(status: 503, rejected: true)
        state.requestStarted()
        let body = json(call("GET", "/api/metrics"))
        #expect(body["total"] as? Int == 2)
        #expect(body["successful"] as? Int == 1)
        #expect(body["rejected"] as? Int == 1)
        #expect(body["in_flight"] as? Int == 1)
        #expect(body["capacity"] as? Int == 100)
        #expect(body["utilization"] as? Double == 0.01)
        let text = call("GET", "/metrics")
        #expect(text.contentType.hasPrefix("text/plain; version=0.0.4"))
        #expect(text.body.contains(#"fluxor_demo_requests_total{instance="a"} 2"#))
        #expect(text.body.contains(#"fluxor_demo_in_flight_requests{instance="a"} 1"#))
        #expect(text.body.contains("# TYPE fluxor_demo_requests_rejected_total counter"))
    }
}
