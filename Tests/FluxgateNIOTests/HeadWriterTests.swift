import FluxgateCore
import NIOCore
import Testing

@testable import FluxgateNIO

/// ``HeadWriter`` copies a head's pieces into capacity reserved once; what it must
/// never do is write past the reservation or lose a piece when an estimate is short.
@Suite struct HeadWriterTests {
    @Test func aShortEstimateStillWritesTheWholeHead() {
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        let piece = String(repeating: "x", count: 700)
        buffer.writeHead(estimate: 1) { out in
            out.write("GET / HTTP/1.1\r\n")
            for _ in 0..<8 { out.write(piece) }
            out.write("\r\n")
        }
        #expect(buffer.readableBytes == 16 + 8 * 700 + 2)
        #expect(buffer.readString(length: buffer.readableBytes) == "GET / HTTP/1.1\r\n" + String(repeating: piece, count: 8) + "\r\n")
    }

    @Test func writesAfterExistingBytesAndKeepsThem() {
        var buffer = ByteBufferAllocator().buffer(string: "before|")
        buffer.writeHead(estimate: 4) { out in
            out.write(String(repeating: "y", count: 300))
        }
        #expect(buffer.readString(length: buffer.readableBytes) == "before|" + String(repeating: "y", count: 300))
    }

    @Test(arguments: [UInt64(0), 1, 0xDEAD_BEEF, 0x0123_4567_89AB_CDEF, .max])
    func generatedIDsAreWrittenAsRequestIDSpellsThem(_ value: UInt64) {
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        buffer.writeHead(estimate: 8) { out in out.writeField("x-request-id", .generated(value)) }
        #expect(buffer.readString(length: buffer.readableBytes) == "x-request-id: \(RequestID.generated(value).description)\r\n")
    }

    @Test func clientIDsSmallAndLargeStringsAreCopiedAsTheyAre() {
        for id in ["abc", String(repeating: "k", count: 200)] {
            var buffer = ByteBufferAllocator().buffer(capacity: 0)
            buffer.writeHead(estimate: 2) { out in out.writeField("x-request-id", .client(InlineText(id))) }
            #expect(buffer.readString(length: buffer.readableBytes) == "x-request-id: \(id)\r\n")
        }
    }

    /// A trusted peer's `X-Forwarded-For` lines are joined into one field, built apart
    /// from the client's lines: the joined list must arrive whole.
    @Test func manyForwardedForLinesFromATrustedPeerAreAllJoined() throws {
        let hops = (0..<60).map { "10.0.\($0 / 256).\($0 % 256)" }
        let request = "GET /x HTTP/1.1\r\nHost: a\r\n" + hops.map { "X-Forwarded-For: \($0)\r\n" }.joined() + "\r\n"
        guard let upstream = serialized(request, keepForwardedFor: true) else { return }
        let text = String(buffer: upstream)
        #expect(text.contains("x-forwarded-for: " + hops.joined(separator: ", ") + ", 192.0.2.1\r\n"))
        #expect(text.hasPrefix("GET /x HTTP/1.1\r\nHost: a\r\n"))
        #expect(text.hasSuffix("x-request-id: 0000000000000007\r\n\r\n"))
    }

    /// `host_header`: the upstream's `Host` replaces the client's line wherever it is
    /// (first, among others, in any case) and nothing else moves; the client's value
    /// stays in `X-Forwarded-Host`. Without a client `Host` it is added.
    @Test(arguments: [
        "GET /x HTTP/1.1\r\nHost: gw.example\r\nAccept: */*\r\n\r\n",
        "GET /x HTTP/1.1\r\nAccept: */*\r\nhOsT:gw.example\r\n\r\n",
        "GET /x HTTP/1.1\r\nX-Host: h\r\nHosts: y\r\nAccept: */*\r\nHOST:  gw.example \r\n\r\n",
        "GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n",
    ])
    func anUpstreamsHostReplacesTheClientsAndKeepsTheRest(_ request: String) throws {
        guard let serialized = serialized(request) else { return }
        let hadHost = request.lowercased().contains("\r\nhost:")
        let text = String(buffer: RequestSerializer.withField("host", "api.internal:8080", dropping: hadHost ? .host : nil, from: serialized, allocator: ByteBufferAllocator()))
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines.first == "GET /x HTTP/1.1")
        #expect(lines.filter { $0.lowercased().hasPrefix("host:") } == ["host: api.internal:8080"], "\(text)")
        #expect(lines.contains("Accept: */*"))
        #expect(lines.contains("x-forwarded-host: gw.example") == hadHost, "\(text)")
        if request.contains("X-Host") { #expect(lines.contains("X-Host: h") && lines.contains("Hosts: y")) }
        // Every other line as it was: the original minus its Host line, plus the new one.
        let before = String(buffer: serialized).components(separatedBy: "\r\n").filter { !$0.lowercased().hasPrefix("host:") }
        #expect(lines.filter { $0 != "host: api.internal:8080" } == before)
        #expect(text.hasSuffix("\r\n\r\n"))
    }

    /// `request` parsed and written as it goes upstream (request ID 7, client
    /// 192.0.2.1), or nil with an issue recorded when it does not parse.
    func serialized(_ request: String, keepForwardedFor: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) -> ByteBuffer? {
        var head = RequestHead()
        let bytes = Array(request.utf8)
        let outcome = bytes.withUnsafeBytes { RequestHeadParser.parse($0, maxLength: 65_536, into: &head) }
        guard case .complete = outcome else {
            Issue.record("not parsed: \(outcome)", sourceLocation: sourceLocation)
            return nil
        }
        return bytes.withUnsafeBytes { raw in
            RequestSerializer.head(
                head, bytes: raw, requestID: .generated(7), clientAddress: "192.0.2.1", keepForwardedFor: keepForwardedFor,
                into: ByteBufferAllocator().buffer(capacity: 0))
        }
    }
}
