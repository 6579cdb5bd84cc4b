import Testing

@testable import FluxgateCore

struct ResponseHeadParserTests {
    func parse(_ text: String) -> ResponseHeadParser.Outcome {
        Array(text.utf8).withUnsafeBytes { ResponseHeadParser.parse($0, maxLength: 1024) }
    }

    func head(_ text: String) throws -> ResponseHead {
        guard case .complete(let head) = parse(text) else {
            Issue.record("expected a complete head for \(text.debugDescription), got \(parse(text))")
            throw CancellationError()
        }
        return head
    }

    @Test func typicalHead() throws {
        let text = "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 12\r\nConnection: keep-alive\r\nX-Request-ID: up\r\n\r\nbody"
        let head = try head(text)
        #expect(head.status == 200)
        #expect(head.minorVersion == 1)
        #expect(head.length == text.utf8.count - 4)
        #expect(head.statusLineLength == 17)
        #expect(head.fields.map(\.kind) == [.other, .contentLength, .connection, .requestID])
        #expect(head.contentLength == 12)
        #expect(!head.connectionClose)
        #expect(head.keepsConnection)
        #expect(head.framing(requestWasHead: false) == .contentLength(12))
        #expect(head.framing(requestWasHead: true) == .none)
        let bytes = Array(text.utf8)
        #expect(String(decoding: bytes[head.fields[0].value], as: UTF8.self) == "nginx")
    }

    /// RFC 9112 §6.3, in order.
    @Test(arguments: [
        ("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", BodyFraming.none),
        ("HTTP/1.1 304 Not Modified\r\n\r\n", .none),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .chunked),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", .chunked),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .untilClose),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", .none),
        ("HTTP/1.1 200 OK\r\n\r\n", .untilClose),
        ("HTTP/1.0 200 OK\r\n\r\n", .untilClose),
    ])
    func framing(text: String, expected: BodyFraming) throws {
        #expect(try head(text).framing(requestWasHead: false) == expected)
    }

    @Test func connectionReuse() throws {
        #expect(try head("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keepsConnection == false)
        #expect(try head("HTTP/1.0 200 OK\r\n\r\n").keepsConnection == false)
        #expect(try head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n").keepsConnection)
        let named = try head("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\r\n")
        #expect(named.connectionTokens == ["x-secret"])
    }

    @Test func emptyReasonAndValues() throws {
        #expect(try head("HTTP/1.1 200\r\n\r\n").status == 200)
        #expect(try head("HTTP/1.1 404 \r\n\r\n").status == 404)
        let empty = try head("HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Spaced:   v  \r\n\r\n")
        #expect(empty.fields[0].value.isEmpty)
        #expect(empty.fields[1].value.count == 1)
    }

    @Test(arguments: [
        "HTTP/2 200 OK\r\n\r\n", "HTTP/1.2 200 OK\r\n\r\n", "http/1.1 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n", "HTTP/1.1 600 High\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 200 OK\nServer: x\r\n\r\n", "HTTP/1.1 200 OK\r\nServer: x\n\r\n\r\n", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nName : x\r\n\r\n", "HTTP/1.1 200 OK\r\n: x\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n", "HTTP/1.1 200 OK\r\nA: b\u{0}c\r\n\r\n", "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
    ])
    func refusesMalformedHeads(text: String) {
        guard case .invalid = parse(text) else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
    }

    /// What is already wrong is refused before the head's end arrives (a server ending
    /// lines with a bare LF never sends CRLFCRLF: the client would wait for the timeout).
    @Test(arguments: [
        "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "HTTP/1.1 200 OK\r\nServer: x\n", "SSH-2.0-OpenSSH_9.2\r\n",
        "HTTP/2", "HTTP/1.1 200 OK\r\nA: b\u{0}", "HTTP/1.1 200 OK\r\nA: b\rc",
    ])
    func refusesWhatIsWrongBeforeTheEnd(text: String) {
        guard case .invalid = parse(text) else {
            Issue.record("not refused before the end: \(text.debugDescription)")
            return
        }
    }

    @Test func incompleteAndOversized() {
        #expect(parse("H") == .incomplete)
        #expect(parse("HTTP/1.1 200 OK\r") == .incomplete)
        #expect(parse("HTTP/1.1 200 OK\r\nA: \tb") == .incomplete)
        #expect(parse("HTTP/1.1 200 OK\r\nServer: x\r\n") == .incomplete)
        #expect(parse("HTTP/1.1 200 OK\r\n\r") == .incomplete)
        let big = "HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 2000)
        #expect(parse(big) == .invalid("response head exceeds 1024 bytes"))
    }

    @Test func headEndFindsSplitTerminators() {
        let bytes = Array("ab\r\n\r\ncd".utf8)
        bytes.withUnsafeBytes { buffer in
            // `from` is how much was scanned before without a match.
            for start in 0...5 { #expect(ResponseHeadParser.headEnd(in: buffer, from: start) == 6) }
            #expect(ResponseHeadParser.headEnd(in: UnsafeRawBufferPointer(rebasing: buffer[0..<5])) == nil)
        }
        Array("\r\n\r\n".utf8).withUnsafeBytes { #expect(ResponseHeadParser.headEnd(in: $0) == 4) }
        Array("x\r\r\n\r\n".utf8).withUnsafeBytes { #expect(ResponseHeadParser.headEnd(in: $0) == 6) }
    }
}

struct BodyFramerTests {
    /// Feeds `input` in pieces of `step` bytes; returns the payload and the bytes consumed.
    func run(_ framing: BodyFraming, _ input: String, step: Int = .max) throws -> (payload: String, consumed: Int, complete: Bool) {
        var framer = BodyFramer(framing)
        let bytes = Array(input.utf8)
        var payload: [UInt8] = []
        var offset = 0
        while offset < bytes.count && !framer.isComplete {
            let end = min(bytes.count, offset + step)
            let consumed = try bytes[offset..<end].withUnsafeBytes { piece in
                try framer.consume(piece) { range in payload += bytes[(offset + range.lowerBound)..<(offset + range.upperBound)] }
            }
            offset += consumed
            if consumed < end - offset + consumed { break }
        }
        return (String(decoding: payload, as: UTF8.self), offset, framer.isComplete)
    }

    @Test func contentLengthStopsAtTheLength() throws {
        let result = try run(.contentLength(5), "helloEXTRA")
        #expect(result.payload == "hello")
        #expect(result.consumed == 5)
        #expect(result.complete)
    }

    @Test(arguments: [1, 2, 3, 7, 1000])
    func chunkedInAnySplit(step: Int) throws {
        let body = "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nNEXT"
        let result = try run(.chunked, body, step: step)
        #expect(result.payload == "Wikipedia in\r\n\r\nchunks.")
        #expect(result.consumed == body.utf8.count - 4)
        #expect(result.complete)
    }

    @Test(arguments: [
        ("x\r\n", BodyFramer.Failure.invalidChunkSize), ("\r\n", .invalidChunkSize), ("-1\r\n", .invalidChunkSize),
        ("4\nWiki\r\n", .invalidChunkSize), ("4\r\nWikiX\r\n", .missingCRLF), ("1234567890abcdef0\r\n", .chunkSizeTooLarge),
        ("0\r\nBad\nTrailer\r\n\r\n", .invalidTrailer), ("0\r\n \r\n\r\n", .invalidTrailer),
        ("0\r\nX: v\nY: w\r\n\r\n", .missingCRLF),
        // Trailer lines are field lines (found by the fuzzer against llhttp, Fuzz/run.sh).
        ("0\r\nNoColon\r\n\r\n", .invalidTrailer), ("0\r\n: v\r\n\r\n", .invalidTrailer),
        ("0\r\nX : v\r\n\r\n", .invalidTrailer), ("0\r\nContent-Length:\r\n\r\n", .framingFieldInTrailer),
        ("0\r\nX: 1\r\ntransfer-ENCODING: chunked\r\n\r\n", .framingFieldInTrailer), ("0\r\nX: a\u{1}b\r\n\r\n", .invalidTrailer),
        // Chunk extensions are `;name[=token|"quoted"]`, nothing looser (also found by the fuzzer).
        ("1;\r\nz\r\n0\r\n\r\n", .invalidChunkExtension), ("1; a\r\nz\r\n0\r\n\r\n", .invalidChunkExtension),
        ("1;a=\r\nz\r\n0\r\n\r\n", .invalidChunkExtension), ("1;a=b c\r\nz\r\n0\r\n\r\n", .invalidChunkExtension),
        ("1;a=\"open\r\nz\r\n0\r\n\r\n", .invalidChunkExtension), ("1;a=\"x\"y\r\nz\r\n0\r\n\r\n", .invalidChunkExtension),
        ("1 \r\nz\r\n0\r\n\r\n", .invalidChunkSize),
    ])
    func chunkedRefusesMalformedInput(body: String, failure: BodyFramer.Failure) {
        #expect(throws: failure) { try run(.chunked, body) }
    }

    @Test func chunkExtensionsOfEveryAllowedShape() throws {
        let body = "1;a\r\nx\r\n1;a=b;c\r\ny\r\n1;q=\"s p;\\\"e\\\\\"\r\nz\r\n0;last=1\r\n\r\n"
        let result = try run(.chunked, body, step: 1)
        #expect(result.payload == "xyz")
        #expect(result.complete)
    }

    @Test func untilCloseTakesEverything() throws {
        let result = try run(.untilClose, "all of it")
        #expect(result.payload == "all of it")
        #expect(!result.complete)
    }

    @Test func noBodyConsumesNothing() throws {
        let result = try run(.none, "next response")
        #expect(result.consumed == 0)
        #expect(result.complete)
    }
}
