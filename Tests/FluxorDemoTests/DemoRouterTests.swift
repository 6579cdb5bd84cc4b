import Testing

@testable import FluxorDemo

struct DemoRouterTests {
    let router = DemoRouter(instance: "a", maxBodyBytes: 64)
    let idle = DemoRouter.Load(inFlight: 0, capacity: 100)

    func call(_ method: String, _ path: String, _ body: String = "", load: DemoRouter.Load? = nil) -> DemoResponse {
        router.respond(to: .init(method: method, path: path, body: Array(body.utf8)), unixTime: 1_700_000_000, load: load ?? idle)
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
        let response = call("GET", "/ready", load: .init(inFlight: inFlight, capacity: 100))
        #expect(response.status == status)
        #expect(response.body == #"{"ready":\#(status == 200),"checks":{"server":{"ccu_utilization":\#(utilization),"queue_utilization":0}}}"#)
    }

    @Test func echoReturnsTheObject() {
        #expect(call("POST", "/api/echo", #"{"a":[1,2],"b":"x"}"#) == DemoResponse(status: 200, body: #"{"echo":{"a":[1,2],"b":"x"},"message":"Echo successful"}"#))
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
        #expect(wrong.headers.first?.0 == "allow" && wrong.headers.first?.1 == "POST")
        #expect(call("DELETE", "/health").status == 405)
    }
}
