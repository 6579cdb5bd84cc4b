import Testing

@testable import FluxgateCore

struct ParsingTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("2s", .seconds(2)), ("1.5s", .milliseconds(1500)), ("1m", .seconds(60)),
        ("1h", .seconds(3600)), ("250us", .microseconds(250)), ("0s", .zero), (" 3s ", .seconds(3)),
    ])
    func durations(text: String, expected: Duration) {
        #expect(DurationParser.parse(text) == expected)
    }

    @Test(arguments: ["30", "s", "-1s", "1x", "", "1 s", "ms500", "nan s"])
    func badDurations(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test func durationFormatting() {
        #expect(DurationParser.format(.seconds(2)) == "2s")
        #expect(DurationParser.format(.milliseconds(500)) == "500ms")
        #expect(DurationParser.format(.seconds(60)) == "1m")
        #expect(DurationParser.format(.zero) == "0s")
    }

    @Test func endpoints() {
        #expect(SocketEndpoint.parse("0.0.0.0:8080") == SocketEndpoint(host: "0.0.0.0", port: 8080))
        #expect(SocketEndpoint.parse(":8080") == SocketEndpoint(host: "0.0.0.0", port: 8080))
        #expect(SocketEndpoint.parse("[::1]:9090") == SocketEndpoint(host: "::1", port: 9090))
        #expect(SocketEndpoint.parse("[::1]:9090")?.description == "[::1]:9090")
        for bad in ["8080", "host:", "host:99999", "::1:80", "a b:1", "[::1]"] {
            #expect(SocketEndpoint.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func upstreamURLs() throws {
        #expect(try UpstreamURL.parse("http://127.0.0.1:9001").get().endpoint == SocketEndpoint(host: "127.0.0.1", port: 9001))
        #expect(try UpstreamURL.parse("http://app/").get().endpoint.port == 80)
        #expect(try UpstreamURL.parse("HTTP://[::1]:81").get().endpoint.host == "::1")
        #expect(try UpstreamURL.parse("https://a").get() == UpstreamURL(endpoint: SocketEndpoint(host: "a", port: 443), tls: true))
        #expect(try UpstreamURL.parse("https://a:8443").get().description == "https://a:8443")
        for bad in ["https://a:1/x", "ftp://a", "http://a:1/path", "http://:1", "http://u@a:1", "http://a:0", "127.0.0.1:9001"] {
            #expect(throws: UpstreamURL.ParseFailure.self, "\(bad)") { try UpstreamURL.parse(bad).get() }
        }
    }
}
