import NIOCore
import NIOEmbedded
import NIOHTTP1

/// llhttp (NIOHTTP1's parser) as the reference for the response parsers Fluxgate
/// wrote itself: the differential test and the fuzzer (`fluxgate-fuzz`) ask it.
public enum LlhttpOracle {
    /// What NIOHTTP1's response decoder makes of `bytes`, answering a `GET /`;
    /// nil when it refuses them.
    public static func responseParts(_ bytes: [UInt8]) -> [HTTPClientResponsePart]? {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward)))
            try channel.writeOutbound(HTTPClientRequestPart.head(.init(version: .http1_1, method: .GET, uri: "/")))
            try channel.writeOutbound(HTTPClientRequestPart.end(nil))
            try channel.writeInbound(ByteBuffer(bytes: bytes))
            var parts: [HTTPClientResponsePart] = []
            while let part = try channel.readInbound(as: HTTPClientResponsePart.self) { parts.append(part) }
            return parts
        } catch {
            return nil
        }
    }

    /// The head llhttp reads from `bytes`, if it accepts one.
    public static func head(_ bytes: [UInt8]) -> HTTPResponseHead? {
        guard case .head(let head)? = responseParts(bytes)?.first else { return nil }
        return head
    }

    /// What NIOHTTP1's request decoder (llhttp, strict) makes of `bytes`; nil when it
    /// refuses them. Its default limits: the differential inputs stay far below them.
    public static func requestParts(_ bytes: [UInt8]) -> [HTTPServerRequestPart]? {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.writeInbound(ByteBuffer(bytes: bytes))
            var parts: [HTTPServerRequestPart] = []
            while let part = try channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
            return parts
        } catch {
            return nil
        }
    }

    /// The request head llhttp reads from `bytes`, if it accepts one.
    public static func requestHead(_ bytes: [UInt8]) -> HTTPRequestHead? {
        guard case .head(let head)? = requestParts(bytes)?.first else { return nil }
        return head
    }
}
