import FluxgateCore
import NIOCore
import Testing

@testable import FluxgateNIO

/// ``ResponseRelay`` alone: upstream bytes in, client bytes out.
struct ResponseRelayTests {
    /// A body that ends at the upstream's close, in reads small and large, reaches a
    /// keep-alive HTTP/1.1 client as chunks whose payload is the body, byte for byte,
    /// and the last chunk goes out at the close.
    @Test func aBodyEndingAtCloseIsRechunkedWholeForAKeepAliveClient() throws {
        var relay = ResponseRelay(requestWasHead: false, clientHTTP10: false, clientKeepAlive: true, requestID: .client("t"))
        relay.requestComplete = true
        let allocator = ByteBufferAllocator()
        var out = ByteBuffer()
        let large = String(repeating: "x", count: 10_000)
        let reads = ["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst", large, "", "end"]
        for read in reads {
            let complete = try relay.receive(ByteBuffer(string: read), allocator: allocator, now: .zero) { var bytes = $0; out.writeBuffer(&bytes) }
            #expect(!complete)
        }
        #expect(relay.upstreamClosed { var bytes = $0; out.writeBuffer(&bytes) })
        #expect(relay.clientKeepAlive)
        #expect(!relay.upstreamReusable)
        let text = String(buffer: out)
        let (head, body) = try #require(text.split(separator: "\r\n\r\n", maxSplits: 1).map(String.init).pairs)
        #expect(head.lowercased().contains("\r\ntransfer-encoding: chunked"))
        #expect(body == "5\r\nfirst\r\n2710\r\n\(large)\r\n3\r\nend\r\n0\r\n\r\n")
    }

    /// An HTTP/1.0 client, or one whose connection closes after this response anyway,
    /// gets the body as the upstream sent it, ended by the close.
    @Test func anHTTP10ClientOrAClosingOneGetsTheBodyAsSent() throws {
        for (http10, keepAlive) in [(true, true), (false, false)] {
            var relay = ResponseRelay(requestWasHead: false, clientHTTP10: http10, clientKeepAlive: keepAlive, requestID: .client("t"))
            relay.requestComplete = true
            var out = ByteBuffer()
            _ = try relay.receive(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\nall of it"), allocator: ByteBufferAllocator(), now: .zero) {
                var bytes = $0
                out.writeBuffer(&bytes)
            }
            #expect(relay.upstreamClosed { var bytes = $0; out.writeBuffer(&bytes) })
            #expect(!relay.clientKeepAlive)
            #expect(String(buffer: out).hasSuffix("\r\n\r\nall of it"))
            #expect(!String(buffer: out).lowercased().contains("chunked"))
        }
    }
}

extension Array where Element == String {
    fileprivate var pairs: (String, String)? { count == 2 ? (self[0], self[1]) : nil }
}
