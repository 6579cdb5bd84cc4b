import Testing

@testable import FluxgateCore

struct ParsingTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("2s", .seconds(2)), ("1.5s", .milliseconds(1500)), ("1m", .seconds(60)),
        ("1h", .seconds(3600)), ("250us", .microseconds(250)), ("0s", .zero), ("0", .zero), (" 3s ", .seconds(3)),
        // Several units in a row, largest first, as nginx and Go write them.
        ("1m30s", .seconds(90)), ("1h30m", .seconds(5400)), ("2d", .seconds(172_800)), ("1s500ms", .milliseconds(1500)),
    ])
    func durations(text: String, expected: Duration) {
        #expect(DurationParser.parse(text) == expected)
    }

    @Test(arguments: ["30", "00", "0.0", "1", "s", "-1s", "1x", "", "1 s", "ms500", "nan s", "1s1m", "1m1m", "1m 30s", "1m30", "1e3s", "+1s", "1.s5"])
    func badDurations(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test(arguments: [
        ("65536", 65536), ("0", 0), ("64k", 65536), ("64K", 65536), ("64KiB", 65536), ("10m", 10_485_760),
        ("10MiB", 10_485_760), ("1g", 1_073_741_824), ("1GiB", 1_073_741_824), (" 2k ", 2048),
    ])
    func byteSizes(text: String, expected: Int) {
        #expect(ByteSizeParser.parse(text) == expected)
    }

    /// Decimal units are refused, not guessed (1000 or 1024?); so are fractions and signs.
    @Test(arguments: ["", "k", "1.5m", "10MB", "10kb", "-1k", "+1k", "1 k", "1kk", "9999999999999g", "0x10"])
    func badByteSizes(text: String) {
        #expect(ByteSizeParser.parse(text) == nil)
    }

    /// The word-at-a-time scan finds the same byte as a byte-by-byte loop, wherever the
    /// byte sits relative to the 8-byte steps and the buffer's end, and whatever bytes
    /// (obs-text, other control bytes) sit next to it.
    @Test func byteScanAgreesWithAByteLoop() {
        // Every byte value at every place of a two-word buffer, among plain and obs-text bytes.
        for filler: UInt8 in [0x61, 0x80, 0xFF, 0x20] {
            for value in 0...255 {
                for place in 0..<17 {
                    var bytes = [UInt8](repeating: filler, count: 17)
                    bytes[place] = UInt8(value)
                    bytes.withUnsafeBytes { raw in
                        let control = (0..<17).first { raw[$0] < 0x20 || raw[$0] == 0x7F } ?? 17
                        #expect(ByteScan.firstControl(in: raw, from: 0) == control, "\(bytes)")
                    }
                }
            }
        }
        var generator = SystemRandomNumberGenerator()
        let specials: [UInt8] = [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F, 0x7F, 0x20, 0x21, 0x7E, 0x80, 0x9F, 0xA0, 0xFF]
        for _ in 0..<3_000 {
            let count = Int.random(in: 0...70, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0x20...0x7E, using: &generator) }
            for _ in 0..<Int.random(in: 0...6, using: &generator) where count > 0 {
                bytes[Int.random(in: 0..<count, using: &generator)] = specials.randomElement(using: &generator)!
            }
            let from = Int.random(in: 0...count, using: &generator)
            bytes.withUnsafeBytes { raw in
                let control = (from..<count).first { raw[$0] < 0x20 || raw[$0] == 0x7F } ?? count
                let notTab = (from..<count).first { (raw[$0] < 0x20 && raw[$0] != 0x09) || raw[$0] == 0x7F } ?? count
                #expect(ByteScan.firstControl(in: raw, from: from) == control, "\(bytes) from \(from)")
                #expect(ByteScan.firstControlExceptTab(in: raw, from: from) == notTab, "\(bytes) from \(from)")
            }
        }
    }

    /// The token bit words say exactly what RFC 9110's `tchar` list says, for every byte.
    @Test func tokenBytesAreTheRFCList() {
        for value in 0...255 {
            let byte = UInt8(value)
            let expected =
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
            #expect(HeaderName.isTokenByte(byte) == expected, "byte \(value)")
        }
    }

    /// The fast conversion agrees with the exact one (truncation toward zero, clamped)
    /// on both of its paths and at the edges of Int64.
    @Test func nanosecondsClampedMatchesTheExactConversion() {
        func exact(_ duration: Duration) -> Int64 {
            let nanos = duration.attoseconds / 1_000_000_000
            return nanos > Int128(Int64.max) ? .max : nanos < Int128(Int64.min) ? .min : Int64(nanos)
        }
        var values: [Duration] = [
            .zero, .nanoseconds(1), .nanoseconds(-1), .nanoseconds(999), .milliseconds(5), .seconds(9), .seconds(10),
            .seconds(-10), .seconds(60), .seconds(3600), .seconds(86_400 * 365 * 200), .seconds(-86_400 * 365 * 200),
            .nanoseconds(Int64.max), .nanoseconds(Int64.min), .seconds(Int64.max), .seconds(Int64.min),
            .nanoseconds(Int64.max) + .nanoseconds(1), .nanoseconds(Int64.min) - .nanoseconds(1),
            Duration(secondsComponent: 9, attosecondsComponent: 223_372_036_854_775_807),
            Duration(secondsComponent: -1, attosecondsComponent: -1), Duration(secondsComponent: 0, attosecondsComponent: 999_999_999),
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            values.append(Duration(secondsComponent: Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &generator),
                attosecondsComponent: Int64.random(in: -999_999_999_999_999_999...999_999_999_999_999_999, using: &generator)))
        }
        for value in values {
            #expect(value.nanosecondsClamped == exact(value), "\(value)")
        }
    }

    /// Seconds as a Double agree with the components on both paths (under and over
    /// ~9.2 s, where the attoseconds no longer fit in 64 bits).
    @Test func secondsDoubleMatchesTheComponents() {
        let values: [Duration] = [
            .zero, .nanoseconds(1), .milliseconds(-500), .milliseconds(1_500), .seconds(9), .seconds(10), .seconds(-10),
            .seconds(3600), Duration(secondsComponent: 9, attosecondsComponent: 223_372_036_854_775_807),
        ]
        for value in values {
            let (seconds, attoseconds) = value.components
            let exact = Double(seconds) + Double(attoseconds) / 1e18
            #expect(abs(value.secondsDouble - exact) <= abs(exact) * 1e-15, "\(value)")
        }
        #expect(Duration.milliseconds(1_500).secondsDouble == 1.5)
    }

    @Test func durationFormatting() {
        #expect(DurationParser.format(.seconds(2)) == "2s")
        #expect(DurationParser.format(.milliseconds(500)) == "500ms")
        #expect(DurationParser.format(.seconds(60)) == "1m")
        #expect(DurationParser.format(.zero) == "0s")
    }

    @Test func endpoints() {
        #expect(SocketEndpoint.parse("0.0.0.0:8080") == SocketEndpoint(host: "0.0.0.0", port: 8080))
        #expect(SocketEndpoint.parse("[::1]:9090") == SocketEndpoint(host: "::1", port: 9090))
        #expect(SocketEndpoint.parse("[::1]:9090")?.description == "[::1]:9090")
        // A listener's empty host or `*` is every IPv4 interface (nginx, HAProxy); an
        // address to connect to needs a host.
        for all in [":8080", "*:8080", " *:8080 "] {
            #expect(SocketEndpoint.parseListen(all) == SocketEndpoint(host: "0.0.0.0", port: 8080), "\(all)")
            #expect(SocketEndpoint.parse(all) == nil, "\(all)")
        }
        #expect(SocketEndpoint.parseListen("[::]:8080") == SocketEndpoint(host: "::", port: 8080))
        #expect(SocketEndpoint.parseListen("localhost:8080") == SocketEndpoint(host: "localhost", port: 8080))
        for bad in ["8080", "host:", "host:99999", "::1:80", "a b:1", "[::1]", "*", "**:80"] {
            #expect(SocketEndpoint.parse(bad) == nil, "\(bad)")
            #expect(SocketEndpoint.parseListen(bad) == nil, "\(bad)")
        }
    }

    @Test func upstreamURLs() throws {
        #expect(try UpstreamURL.parse("http://127.0.0.1:9001").get().endpoint == SocketEndpoint(host: "127.0.0.1", port: 9001))
        #expect(try UpstreamURL.parse("http://app/").get().endpoint.port == 80)
        #expect(try UpstreamURL.parse("HTTP://[::1]:81").get().endpoint.host == "::1")
        #expect(try UpstreamURL.parse("https://a").get() == UpstreamURL(endpoint: SocketEndpoint(host: "a", port: 443), tls: true))
        #expect(try UpstreamURL.parse("https://a:8443").get().description == "https://a:8443")
        for bad in ["https://a:1/x", "ftp://a", "http://a:1/path", "http://:1", "http://*:1", "http://*", "http://u@a:1", "http://a:0", "127.0.0.1:9001"] {
            #expect(throws: UpstreamURL.ParseFailure.self, "\(bad)") { try UpstreamURL.parse(bad).get() }
        }
    }
}
