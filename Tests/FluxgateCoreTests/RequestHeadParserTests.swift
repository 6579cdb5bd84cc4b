import Testing

@testable import FluxgateCore

struct RequestHeadParserTests {
    func parse(_ text: String, maxLength: Int = 1024) -> (RequestHeadParser.Outcome, RequestHead) {
        var head = RequestHead()
        let outcome = Array(text.utf8).withUnsafeBytes { RequestHeadParser.parse($0, maxLength: maxLength, into: &head) }
        return (outcome, head)
    }

    func head(_ text: String) throws -> RequestHead {
        let (outcome, head) = parse(text)
        guard outcome == .complete else {
            Issue.record("expected a complete head for \(text.debugDescription), got \(outcome)")
            throw CancellationError()
        }
        return head
    }

    func string(_ text: String, _ range: Range<Int>) -> String {
        String(decoding: Array(text.utf8)[range], as: UTF8.self)
    }

    @Test func typicalHead() throws {
        let text = "GET /api/x?y=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: k6\r\nConnection: keep-alive, X-Drop\r\nX-Request-ID: abc\r\n\r\nnext"
        let head = try head(text)
        #expect(head.method == .GET)
        #expect(string(text, head.target) == "/api/x?y=1")
        #expect(head.minorVersion == 1)
        #expect(head.length == text.utf8.count - 4)
        #expect(head.fields.map(\.kind) == [.host, .other, .connection, .requestID])
        #expect(string(text, head.host!) == "example.com:8080")
        #expect(string(text, head.requestID!) == "abc")
        #expect(head.connectionKeepAlive && head.connectionNamesFields && !head.connectionClose)
        #expect(head.keepsAlive)
        #expect(head.framing == .none)
        #expect(string(text, head.requestLine) == "GET /api/x?y=1 HTTP/1.1")
        #expect(string(text, head.fields[1].line) == "User-Agent: k6\r\n")
    }

    @Test func framingAndExpect() throws {
        let post = try head("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length:  12 \r\nExpect: 100-Continue\r\n\r\n")
        #expect(post.framing == .contentLength(12) && post.expectsContinue)
        let chunked = try head("PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n")
        #expect(chunked.framing == .chunked)
        let empty = try head("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        #expect(empty.framing == .none && !empty.hasBody)
    }

    @Test func http10KeepAliveAndUpgrade() throws {
        let old = try head("GET / HTTP/1.0\r\n\r\n")
        #expect(old.isHTTP10 && !old.keepsAlive && old.hostCount == 0)
        #expect(try head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepsAlive)
        #expect(!(try head("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keepsAlive))
        let ws = try head("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        #expect(ws.upgradeRequested)
        #expect(!(try head("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").upgradeRequested))
    }

    @Test func emptyLinesBeforeTheRequestAreSkipped() throws {
        let text = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
        let head = try head(text)
        #expect(head.start == 4)
        #expect(string(text, head.target) == "/")
        #expect(head.length == text.utf8.count)
    }

    @Test(arguments: [
        "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n",
        "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
        "PROPFIND /d HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:80\r\nX-Empty:\r\nX-Tab:\tv\t\r\nX-Utf8: caf\u{e9}\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: example.com.:8080\r\n\r\n",
        "GET http://10.0.0.1:80/x HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n",
    ])
    func accepted(_ text: String) throws {
        _ = try head(text)
    }

    /// Every refusal in the parser's list, with the reason it gives.
    @Test(arguments: [
        (" GET / HTTP/1.1\r\n\r\n", "no method token"),
        ("GET\t/ HTTP/1.1\r\n\r\n", "no method token"),
        ("\(String(repeating: "A", count: 33)) / HTTP/1.1\r\n\r\n", "no method token of at most 32 bytes"),
        ("GET  / HTTP/1.1\r\n\r\n", "byte outside visible ASCII"),
        ("GET / HTTP/1.1 \r\n\r\n", "does not end"),
        ("GET / HTTP/1.2\r\n\r\n", "version"),
        ("GET / HTTP/2.x\r\n\r\n", "version"),
        ("GET / HTTP/2.0 \r\n\r\n", "version"),
        ("GET / HTTP/10.0\r\n\r\n", "version"),
        ("GET / HTTP/0.9\r\n\r\n", "version"),
        ("GET /a\u{1}b HTTP/1.1\r\n\r\n", "visible ASCII"),
        ("GET /caf\u{e9} HTTP/1.1\r\n\r\n", "visible ASCII"),
        ("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", "fragment"),
        ("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", "neither a path"),
        ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", "asterisk"),
        ("GET http:x HTTP/1.1\r\nHost: h\r\n\r\n", "without an authority"),
        // Found by the fuzzer: llhttp refuses these in an absolute-form authority.
        ("GET http://h:80[|?y=1 HTTP/1.0\r\n\r\n", "authority holds bytes"),
        ("GET http://h{x}/ HTTP/1.1\r\nHost: h\r\n\r\n", "authority holds bytes"),
        ("GET http://h:8@@0/x HTTP/1.1\r\nHost: h\r\n\r\n", "authority holds bytes"),
        ("GET http://user@h/x HTTP/1.1\r\nHost: h\r\n\r\n", "userinfo"),
        ("CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", "authority-form"),
        ("CONNECT `:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", "authority-form"),
        ("GET / HTTP/1.1\nHost: h\r\n\r\n", "does not end"),
        ("GET / HTTP/1.1\r\nHost: h\n\r\n", "bare LF"),
        ("GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", "CR without LF"),
        ("GET / HTTP/1.1\r\nX: a\u{0}b\r\n\r\n", "control byte"),
        ("GET / HTTP/1.1\r\nX: a\u{7f}\r\n\r\n", "control byte"),
        ("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "folding"),
        ("GET / HTTP/1.1\r\nX : a\r\n\r\n", "not a token"),
        ("GET / HTTP/1.1\r\n: a\r\n\r\n", "empty header name"),
        ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", "not a token"),
        ("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length:\t1\r\n\r\n", "Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "repeated"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "single chunked"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "both"),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0"),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "Host"),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "Host"),
        ("GET / HTTP/1.1\r\nHost: a..b\r\n\r\n", "Host has an empty label"),
        ("GET / HTTP/1.1\r\nHost: h:x\r\n\r\n", "Host has a port"),
        ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "Host has an IP literal without"),
        ("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", "without a host"),
        ("GET http://a..b/x HTTP/1.1\r\nHost: a..b\r\n\r\n", "absolute-form authority has an empty label"),
    ])
    func refused(_ text: String, _ reason: String) {
        let (outcome, _) = parse(text)
        guard case .invalid(.malformed(let message)) = outcome else {
            Issue.record("\(text.debugDescription) gave \(outcome)")
            return
        }
        #expect(message.contains(reason), "\(text.debugDescription): \(message)")
    }

    /// `HostSyntax` on its own: what a `Host` value or an absolute-form authority may be.
    @Test(arguments: [
        ("", nil), ("h", nil), ("example.com", nil), ("example.com.", nil), ("a-b_c~d.e", nil), ("EXAMPLE.com:443", nil),
        ("h:", nil), ("h:0", nil), ("h:65535", nil), ("10.0.0.1", nil), ("[::1]", nil), ("[::1]:8080", nil),
        ("[v1.x]", nil), ("caf%C3%A9.example", nil), ("x!$&'()*+,;=y", nil),
        ("a..b", "empty label"), (".a", "empty label"), (".", "empty label"), ("a.:80", nil), ("a...", "empty label"),
        (":80", "no host"), (":", "no host"),
        ("h:x", "port"), ("h:80:80", "port"), ("h:65536", "port"), ("h:000080", "port"), ("h: 80", "port"), ("a:b:c", "port"),
        ("a[b", "bytes a host name cannot"), ("a]b", "bytes a host name cannot"), ("a%2", "%"), ("a%zz", "%"), ("%", "%"),
        ("[::1", "without its closing"), ("[", "without its closing"), ("[]", "empty IP literal"), ("[::1]x", "after its IP literal"),
        ("[::1]]", "after its IP literal"), ("[fe80::1%25eth0]", "an IP literal cannot"), ("[[::1]]", "an IP literal cannot"),
    ] as [(String, String?)])
    func hostSyntax(_ text: String, _ expected: String?) {
        let problem = Array(text.utf8).withUnsafeBytes { HostSyntax.problem($0) }
        if let expected {
            #expect(problem?.contains(expected) == true, "\(text.debugDescription): \(problem ?? "accepted")")
        } else {
            #expect(problem == nil, "\(text.debugDescription): \(problem ?? "")")
        }
    }

    /// A method token the gateway does not forward is 501, not malformed (RFC 9110
    /// §9.1) — methods are case-sensitive, so `get` is one of them; up to 32 bytes.
    @Test func anUnknownMethodTokenIsNotImplementedRatherThanMalformed() {
        for method in ["BREW", "get", "M-SEARCH", "PRI", "VERSION-CONTROL", String(repeating: "X", count: 32)] {
            #expect(parse("\(method) / HTTP/1.1\r\nHost: h\r\n\r\n").0 == .invalid(.methodNotImplemented), "\(method)")
        }
        #expect(parse("BREW").0 == .incomplete)  // a known method's prefix or not: wait for the space
        for method in RequestMethod.allCases where method != .CONNECT {
            #expect(parse("\(method.name) / HTTP/1.1\r\nHost: h\r\n\r\n").0 == .complete, "\(method.name)")
        }
    }

    /// A well-formed later major version is refused with its own reason (505), once
    /// its request line is complete; anything else after `HTTP/` stays malformed.
    @Test func aLaterMajorVersionIsNotSupportedRatherThanMalformed() {
        for version in ["2.0", "3.0", "9.9"] {
            #expect(parse("GET / HTTP/\(version)\r\nHost: h\r\n\r\n").0 == .invalid(.versionNotSupported), "\(version)")
        }
        #expect(parse("GET / HTTP/2.0\r\n").0 == .invalid(.versionNotSupported), "answered once the line ends")
        // HTTP/2's prior-knowledge preface is the same version problem, not an unknown
        // method (501 until 2026-12-05); a part of it waits for the rest.
        #expect(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").0 == .invalid(.versionNotSupported))
        #expect(parse("PRI * HTTP/2").0 == .incomplete)
        #expect(parse("PRI * HTTP/1.1\r\n\r\n").0 == .invalid(.methodNotImplemented))
        #expect(parse("PRIX / HTTP/1.1\r\n\r\n").0 == .invalid(.methodNotImplemented))
        #expect(parse("GET / HTTP/2.0\r").0 == .incomplete)
        #expect(parse("GET / HTTP/2").0 == .incomplete)
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n").0 == .complete)
    }

    /// What the access log names of a refused head: the request line once it was read
    /// (even when the refusal came later, or the head arrived in parts), the method
    /// token alone for a 501, nothing when the request line itself was the problem.
    @Test func aRefusedHeadNamesWhatItsRequestLineSaid() {
        func line(_ parts: [String]) -> RefusedRequestLine? {
            var head = RequestHead()
            var bytes: [UInt8] = []
            for part in parts {
                bytes += Array(part.utf8)
                let outcome = bytes.withUnsafeBytes { RequestHeadParser.parse($0, maxLength: 64, into: &head) }
                if case .invalid(let refusal) = outcome {
                    return bytes.withUnsafeBytes { head.refusedLine(in: $0, for: refusal) }
                }
            }
            Issue.record("not refused: \(parts)")
            return nil
        }
        #expect(line(["GET /a?b HTTP/1.1\r\nHost: a..b\r\n\r\n"]) == RefusedRequestLine(method: "GET", target: "/a?b"))
        #expect(line(["\r\nPOST /p HT", "TP/1.1\r\nHost: h\r\n", "Bad Name: x\r\n"]) == RefusedRequestLine(method: "POST", target: "/p"))
        #expect(line(["GET /t HTTP/1.1\r\nX: \(String(repeating: "v", count: 80))"]) == RefusedRequestLine(method: "GET", target: "/t"))
        #expect(line(["\r\nBREW /pot HTTP/1.1\r\n"]) == RefusedRequestLine(method: "BREW", target: "-"))
        #expect(line(["GET /a b HTTP/1.1\r\n"]) == nil)
        #expect(line(["GET /\(String(repeating: "u", count: 80))"]) == nil)  // 414: the target never ended
        #expect(line(["GET /\(String(repeating: "u", count: 80)) HTTP/1.1\r\n"]) == nil)  // 414, ended: not logged either
        #expect(line(["GE{"]) == nil)
    }

    @Test func invalidInputIsRefusedBeforeTheHeadEnds() {
        // No blank line yet, but already wrong: answered now, not at the header timeout.
        #expect(parse("BREW ").0 == .invalid(.methodNotImplemented))
        #expect(parse("GE{").0 == .invalid(.malformed("no method token of at most 32 bytes followed by one space")))
        if case .invalid = parse("GET / HTTP/1.1\r\nBad Name: x\r\n").0 {} else { Issue.record("bad field line not refused early") }
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\n").0 == .incomplete)
        #expect(parse("GE").0 == .incomplete)
        #expect(parse("GET / HTTP/1.").0 == .incomplete)
    }

    @Test func lengthLimit() {
        let filler = String(repeating: "a", count: 200)
        let text = "GET / HTTP/1.1\r\nHost: h\r\nX-Filler: \(filler)\r\n\r\n"
        #expect(parse(text, maxLength: 200).0 == .invalid(.tooLarge))
        #expect(parse(text, maxLength: text.utf8.count).0 == .complete)
        // An unfinished head past the limit is refused without waiting for its end.
        #expect(parse("GET / HTTP/1.1\r\nX-Filler: \(filler)", maxLength: 100).0 == .invalid(.tooLarge))
        // The request line alone past the limit: 414, finished or not.
        #expect(parse("GET /\(filler) HTTP/1.1\r\nHost: h\r\n\r\n", maxLength: 100).0 == .invalid(.uriTooLong))
        #expect(parse("GET /\(filler)", maxLength: 100).0 == .invalid(.uriTooLong))
        #expect(parse("GET /\(filler) HTTP/1.1\r\nHost: h\r\n", maxLength: 100).0 == .invalid(.uriTooLong))
        // A line that fits with headers that do not: 431.
        #expect(parse("GET /\(filler) HTTP/1.1\r\nX-Filler: \(filler)\r\n\r\n", maxLength: 300).0 == .invalid(.tooLarge))
    }

    /// However the head is cut into reads, resuming gives the same result as parsing it whole.
    @Test func resumingGivesTheSameHeadAsParsingWhole() throws {
        let text = "\r\nPOST /api/items?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\nX-Request-ID: r1\r\n\r\n"
        let whole = try head(text)
        let bytes = Array(text.utf8)
        for step in 1...7 {
            var head = RequestHead()
            var end = 0
            var outcome = RequestHeadParser.Outcome.incomplete
            while outcome == .incomplete && end < bytes.count {
                end = min(bytes.count, end + step)
                outcome = bytes[0..<end].withUnsafeBytes { RequestHeadParser.parse($0, into: &head) }
            }
            #expect(outcome == .complete)
            head.resumeAt = whole.resumeAt
            #expect(head == whole, "step \(step)")
        }
    }

    @Test func resetKeepsStorageAndClearsFacts() throws {
        var head = try head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")
        head.reset()
        #expect(head == RequestHead())
        #expect(head.fields.capacity >= 2)
    }

    /// `reset()` clears property by property: a head that sets every fact the parser
    /// collects, and one cut in the middle (resume state), must both come back equal
    /// to a fresh head — a property left out of `reset()` fails here.
    @Test func resetClearsEveryFact() throws {
        var full = try head(
            "PUT http://h/x?y HTTP/1.1\r\nHost: h\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n"
                + "Connection: upgrade, close, keep-alive, x-foo\r\nUpgrade: websocket\r\nX-Request-ID: abc\r\n\r\n")
        #expect(full.chunked && full.expectsContinue && full.upgrade != nil && full.requestID != nil && full.hostCount == 2)
        #expect(full.connectionUpgrade && full.connectionClose && full.connectionKeepAlive && full.connectionNamesFields)
        full.reset()
        #expect(full == RequestHead())
        var partial = RequestHead()
        let cut = Array("GET /a HTTP/1.0\r\nContent-Length: 5\r\nX-".utf8)
        let outcome = cut.withUnsafeBytes { RequestHeadParser.parse($0, into: &partial) }
        #expect(outcome == .incomplete)
        #expect(partial != RequestHead())
        partial.reset()
        #expect(partial == RequestHead())
    }
}

struct HeaderNameBytesTests {
    @Test func configuredNamesMatchAnyCase() {
        let name = Array("x-api-key".utf8)
        #expect(Array("X-Api-KEY".utf8).withUnsafeBytes { HeaderName.equalsLowercase($0, name) })
        #expect(!Array("X-Api-Keys".utf8).withUnsafeBytes { HeaderName.equalsLowercase($0, name) })
        #expect(!Array("x-api-kez".utf8).withUnsafeBytes { HeaderName.equalsLowercase($0, name) })
    }
}
