import Testing

@testable import FluxgateCore

struct InlineTextTests {
    @Test(arguments: [0, 1, 15, 16, 63, 64, 65, 4000])
    func textOfAnyLengthComesBackAsItWent(_ length: Int) {
        let text = String((0..<length).map { Character(UnicodeScalar(UInt8(0x21 + $0 % 94))) })
        let held = InlineText(text)
        #expect(held.string == text)
        #expect(held.utf8Count == length)
        #expect(held.withUTF8 { Array($0) } == Array(text.utf8))
        // Up to the capacity in the value itself; beyond it in a String.
        #expect(held.isInline == (length <= InlineText.capacity))
        let fromBytes = Array(text.utf8).withUnsafeBytes { InlineText($0) }
        #expect(fromBytes == held)
    }

    @Test func equalityIsByTheBytes() {
        let long = String(repeating: "a", count: 70)
        #expect(InlineText("abc") == "abc")
        #expect(InlineText("abc") != "abd")
        #expect(InlineText("abc") != "abcd")
        #expect(InlineText(long) == InlineText(long))
        #expect(InlineText(long) != InlineText(long + "a"))
        #expect(RequestID.client("from-client") == .client(InlineText("from-client")))
    }

    /// The byte-level rules (what the data path uses) agree with the `String` ones on
    /// every kind of target: plain, with a query, needing normalising, absolute-form,
    /// asterisk-form, climbing above the root, with non-ASCII bytes.
    @Test func routesAndBodyPrefixesReadTheBytesAsTheyReadTheString() {
        var admission = AdmissionConfig()
        admission.routes = [
            RoutePriority(prefix: "/api", priority: .low), RoutePriority(prefix: "/api/auth", priority: .critical),
            RoutePriority(prefix: "/static/", priority: .low),
        ]
        let prefixes = ["/ingest", "/api/auth"]
        let targets = [
            "/", "/api", "/api/", "/apix", "/api/auth", "/api/auth/login?next=/x", "/health?api", "/api?x", "/api#f",
            "/static/a.css", "/static", "/ingest/logs?x=1", "/ingestion", "/a/../ingest", "/%61pi/x", "/api//auth/x",
            "/api/./auth", "/../api", "http://h/api/auth/x", "http://h?x/api/admin", "HTTPS://h", "*", "/api/\u{301}x",
            "/api\u{301}", "/" + String(repeating: "api/", count: 60),
        ]
        for target in targets {
            let bytes = Array(target.utf8)
            #expect(bytes.withUnsafeBytes { admission.priority(forTarget: $0) } == admission.priority(forTarget: target), "\(target)")
            #expect(bytes.withUnsafeBytes { RequestTarget.matchesAny(prefixes, target: $0) } == RequestTarget.matchesAny(prefixes, target: target), "\(target)")
            if let path = bytes.withUnsafeBytes({ RequestTarget.plainPath($0).map { Array($0) } }) {
                #expect(RequestTarget.routingPath(target).map { Array($0.utf8) } == path, "\(target)")
            }
        }
        #expect(Array("/api/auth/x".utf8).withUnsafeBytes { admission.priority(forTarget: $0) } == .critical)
        #expect(Array("/a/../api/x".utf8).withUnsafeBytes { admission.priority(forTarget: $0) } == .low)
        #expect(Array("/api".utf8).withUnsafeBytes { AdmissionConfig().priority(forTarget: $0) } == .normal)
        #expect(!Array("/ingest".utf8).withUnsafeBytes { RequestTarget.matchesAny([], target: $0) })
    }
}
