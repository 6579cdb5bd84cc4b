import FluxgateCore
import FluxgateTestSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// Our response-head parser against llhttp (NIOHTTP1's decoder) on thousands of
/// mutated heads: it may refuse more than llhttp, never accept what llhttp refuses,
/// and never crash or report ranges outside its input. A seeded, repeatable stand-in
/// until the performance issue's coverage-guided fuzzing run.
struct WireDifferentialTests {
    static let seeds = [
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n",
        "HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
    ]
    static let alphabet = Array("\r\n :\t\u{0}\u{7f}aZ09-,;/HTP.1chunkedContent-Length".utf8)

    func llhttpAccepts(_ bytes: [UInt8]) -> Bool {
        LlhttpOracle.head(bytes) != nil
    }

    @Test func neverAcceptsWhatLlhttpRefuses() {
        var rng = SplitMix(seed: 0x5eed)
        var accepted = 0
        for round in 0..<6000 {
            var bytes = Array(Self.seeds[round % Self.seeds.count].utf8)
            mutate(&bytes, alphabet: Self.alphabet, rng: &rng)
            let outcome = bytes.withUnsafeBytes { ResponseHeadParser.parse($0, maxLength: 4096) }
            guard case .complete(let head) = outcome else { continue }
            accepted += 1
            #expect(head.length <= bytes.count)
            #expect(head.fields.allSatisfy { $0.line.upperBound <= head.length && $0.value.upperBound <= $0.line.upperBound })
            #expect((100...599).contains(head.status))
            if !llhttpAccepts(Array(bytes[0..<head.length])) {
                Issue.record("accepted a head llhttp refuses: \(String(decoding: bytes[0..<head.length], as: UTF8.self).debugDescription)")
            }
            // A head is refused before its end only for what the whole head is refused for.
            for cut in 1..<head.length {
                if case .invalid(let reason) = bytes.withUnsafeBytes({ ResponseHeadParser.parse(UnsafeRawBufferPointer(rebasing: $0[..<cut]), maxLength: 4096) }) {
                    Issue.record("the first \(cut) bytes of a good head refused (\(reason)): \(String(decoding: bytes[0..<head.length], as: UTF8.self).debugDescription)")
                    break
                }
            }
        }
        #expect(accepted > 500)  // the mutations must leave plenty of valid heads to compare
    }

    @Test func framerStaysWithinItsInput() throws {
        var rng = SplitMix(seed: 42)
        let body = Array("5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n".utf8)
        for _ in 0..<4000 {
            var bytes = body
            let position = Int(rng.next() % UInt64(bytes.count))
            bytes[position] = Self.alphabet[Int(rng.next() % UInt64(Self.alphabet.count))]
            var framer = BodyFramer(.chunked)
            var offset = 0
            var previousEnd = 0
            while offset < bytes.count && !framer.isComplete {
                let step = 1 + Int(rng.next() % 7)
                let end = min(bytes.count, offset + step)
                let base = offset
                guard let consumed = try? bytes[offset..<end].withUnsafeBytes({ piece in
                    try framer.consume(piece) { range in
                        #expect(range.lowerBound >= 0 && base + range.upperBound <= end)
                        #expect(base + range.lowerBound >= previousEnd)
                        previousEnd = base + range.upperBound
                    }
                }) else { break }
                #expect(consumed <= end - offset)
                offset += consumed
                if consumed < end - base { break }
            }
        }
    }
}

/// SplitMix64 for repeatable pseudo-random test inputs.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The request-head parser against llhttp, as above for responses: seeded mutations
/// of typical and tricky requests (the libFuzzer target runs the same check,
/// ``RequestDifferential``, on tens of millions of inputs).
struct RequestDifferentialTests {
    static let seeds = [
        "GET /health HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
        "POST /api/items HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n\r\n",
        "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\n",
        "GET http://h:80/x?y=1 HTTP/1.0\r\nConnection: Keep-Alive\r\nX-Request-ID: abc\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "\r\nOPTIONS * HTTP/1.1\r\nHost: [::1]\r\nX-Tab:\tv \r\n\r\n",
    ]
    static let alphabet = Array("\r\n :\t\u{0}\u{7f}\u{80}aZ09-,;/?#%*@[]\"HTP.1GETPOSchunkedContent-LengthTransfer-EncodingHost".utf8)

    @Test func neverAcceptsWhatLlhttpRefusesAndReadsTheSameHead() {
        var rng = SplitMix(seed: 0x7e57)
        var verdicts: [RequestDifferential.Verdict: Int] = [:]
        for round in 0..<8000 {
            var bytes = Array(Self.seeds[round % Self.seeds.count].utf8)
            mutate(&bytes, alphabet: Self.alphabet, rng: &rng)
            let (verdict, problem) = RequestDifferential.check(bytes, split: Int(rng.next() % 1000))
            verdicts[verdict, default: 0] += 1
            if let problem { Issue.record("\(problem) — input \(String(decoding: bytes, as: UTF8.self).debugDescription)") }
        }
        // The mutations must leave plenty of valid heads to compare, and plenty of refusals.
        #expect(verdicts[.bothAccept, default: 0] > 1000)
        #expect(verdicts[.bothRefuse, default: 0] > 1000)
    }

    /// Every method the gateway accepts, llhttp accepts too.
    @Test(arguments: RequestMethod.allCases)
    func everyAcceptedMethodIsLlhttps(_ method: RequestMethod) {
        let target = method == .CONNECT ? "h:443" : (method == .OPTIONS ? "*" : "/x")
        let (verdict, problem) = RequestDifferential.check(Array("\(method.name) \(target) HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        #expect(problem == nil)
        #expect(verdict == .bothAccept)
    }

    /// Where the gateway is stricter than llhttp on purpose (docs/SECURITY.md): each
    /// is accepted by llhttp and refused here.
    @Test(arguments: [
        "GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
    ])
    func strictnessBeyondLlhttp(_ text: String) {
        let (verdict, problem) = RequestDifferential.check(Array(text.utf8))
        #expect(problem == nil)
        #expect(verdict == .onlyLlhttpAccepts)
    }
}

/// One to three random replacements, insertions or deletions of alphabet bytes.
func mutate(_ bytes: inout [UInt8], alphabet: [UInt8], rng: inout SplitMix) {
    for _ in 0..<(1 + Int(rng.next() % 3)) {
        let position = Int(rng.next() % UInt64(bytes.count))
        switch rng.next() % 3 {
        case 0: bytes[position] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
        case 1: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: position)
        default: if bytes.count > 4 { bytes.remove(at: position) }
        }
    }
}
