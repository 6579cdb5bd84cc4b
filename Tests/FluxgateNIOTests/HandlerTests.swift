import FluxgateCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import FluxgateNIO

/// Handlers in `EmbeddedChannel`: timeouts driven by `advanceTime`, no sockets, no sleeps.
struct HandlerTests {
    func timeoutChannel(header: Duration = .seconds(10), idle: Duration = .seconds(60)) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ClientTimeoutHandler(headerTimeout: header, idleTimeout: idle, rejection: GatewayResponses().rawRequestTimeout))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func silentNewConnectionGets408AtTheHeaderDeadline() throws {
        let channel = try timeoutChannel(header: .seconds(10))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(9_999))
        #expect(channel.isActive)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        let answer = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: answer).hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(String(buffer: answer).contains("connection: close"))
        #expect(!channel.isActive)
    }

    @Test func idleKeepAliveClosesQuietlyAndBusyConnectionsDoNot() throws {
        let channel = try timeoutChannel(header: .seconds(10), idle: .seconds(60))
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        _ = try channel.readInbound(as: ByteBuffer.self)
        channel.pipeline.triggerUserOutboundEvent(ClientConnectionEvent.requestHeadReceived, promise: nil)
        // Serving takes longer than both timeouts: neither applies while busy.
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(channel.isActive)
        channel.pipeline.triggerUserOutboundEvent(ClientConnectionEvent.responseCompleted, promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    @Test func bytesAfterIdleStartTheHeaderClock() throws {
        let channel = try timeoutChannel(header: .seconds(5), idle: .seconds(60))
        channel.pipeline.triggerUserOutboundEvent(ClientConnectionEvent.requestHeadReceived, promise: nil)
        channel.pipeline.triggerUserOutboundEvent(ClientConnectionEvent.responseCompleted, promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        try channel.writeInbound(ByteBuffer(string: "GET / HT"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        let answer = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: answer).hasPrefix("HTTP/1.1 408"))
        #expect(!channel.isActive)
    }

    func serverPipeline(maxHeaderBytes: Int = 16_384, pipelining: Bool = true) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = maxHeaderBytes
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: pipelining, withErrorHandling: false, withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: limits)
        try channel.pipeline.syncOperations.addHandler(ProtocolErrorHandler(responses: GatewayResponses()))
        return channel
    }

    func allOutbound(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test func parseErrorsAreAnsweredWith400() throws {
        let channel = try serverPipeline()
        #expect(throws: HTTPParserError.self) { try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nBad Header\r\n\r\n")) }
        let text = try allOutbound(channel)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(text.contains("connection: close"))
        #expect(text.hasSuffix(#"{"error":"bad_request","message":"the request could not be parsed as HTTP/1.1"}"#))
    }

    @Test func headerOverflowIsAnsweredWith431() throws {
        let channel = try serverPipeline(maxHeaderBytes: 1024)
        let request = "GET / HTTP/1.1\r\nX-A: \(String(repeating: "a", count: 1100))\r\n\r\n"
        #expect(throws: HTTPParserError.self) { try channel.writeInbound(ByteBuffer(string: request)) }
        #expect(try allOutbound(channel).hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
    }

    /// Without the pipelining handler's buffering, a parse error can arrive mid-response:
    /// a second head would corrupt the stream, so the handler stays silent.
    @Test func noSecondAnswerOnceAResponseStarted() throws {
        let channel = try serverPipeline(pipelining: false)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
        while try channel.readInbound(as: HTTPServerRequestPart.self) != nil {}
        try channel.writeOutbound(HTTPServerResponsePart.head(.init(version: .http1_1, status: .ok, headers: ["content-length": "5"])))
        _ = try allOutbound(channel)
        #expect(throws: HTTPParserError.self) { try channel.writeInbound(ByteBuffer(string: "\u{1}\u{2}garbage\r\n\r\n")) }
        #expect(try allOutbound(channel) == "")
    }
}
