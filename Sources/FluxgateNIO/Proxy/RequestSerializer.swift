import FluxgateCore
import NIOCore
import NIOHTTP1

/// Writes the request that goes upstream, as bytes (RFC 9110 §7.6 proxy rules).
///
/// Request heads arrive through NIOHTTP1's strict llhttp decoder (untrusted input);
/// they leave as one buffer written here, without an encoder pass: hop-by-hop fields
/// removed (``HopByHopPolicy``), `X-Forwarded-For` appended with the client address,
/// `X-Forwarded-Proto`/`-Host` set, `X-Request-ID` kept or created, `Expect` removed
/// (the gateway answers `100 Continue` itself, as nginx does), HTTP/1.1 upstream
/// whatever the client spoke. Names and values were validated by the decoder.
enum RequestSerializer {
    struct Facts {
        var requestID: RequestID?
        var expectsContinue = false
        var hasHost: Bool { hostCount > 0 }
        var hostCount = 0
        var host: String?
        var contentLength: Int?
        var chunked = false
        /// `Upgrade` present and `Connection` lists `upgrade`: llhttp stops parsing the
        /// connection after this request (it expects another protocol to follow).
        var upgradeHeader = false
        var connectionUpgrade = false
        var upgrade: Bool { upgradeHeader && connectionUpgrade }
    }

    /// One pass over the client's fields, collecting what the proxy decides on.
    static func inspect(_ headers: HTTPHeaders) -> (Facts, HopByHopPolicy) {
        var facts = Facts()
        var policy = HopByHopPolicy()
        for (name, value) in headers {
            switch HeaderName.classify(name) {
            case .host:
                facts.hostCount += 1
                facts.host = value
            case .upgrade:
                facts.upgradeHeader = true
            case .expect:
                if value.trimmingSpaces().lowercased() == "100-continue" { facts.expectsContinue = true }
            case .connection:
                policy.noteConnectionHeader(value)
                if value.utf8.count >= 7, value.lowercased().split(separator: ",").contains(where: { $0.trimmingSpaces() == "upgrade" }) {
                    facts.connectionUpgrade = true
                }
            case .requestID:
                if RequestIDGenerator.isAcceptable(value) { facts.requestID = .client(value) }
            case .contentLength:
                facts.contentLength = Int(value)
            case .transferEncoding:
                facts.chunked = true  // the decoder accepts only a chunked final coding
            default:
                break
            }
        }
        return (facts, policy)
    }

    /// - Parameters:
    ///   - keepForwardedFor: the peer is a trusted proxy: its `X-Forwarded-For` is kept
    ///     and the peer appended; otherwise the header is replaced by the peer alone.
    ///   - underscores: forward field names containing `_` (else they are dropped).
    static func head(
        _ head: HTTPRequestHead, policy: HopByHopPolicy, facts: Facts, requestID: RequestID, clientAddress: String,
        upstreamAuthority: String, keepForwardedFor: Bool = false, underscores: Bool = false, https: Bool = false,
        upgrade: String? = nil, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256 + head.uri.utf8.count + head.headers.count * 40)
        buffer.writeString(head.method.rawValue)
        buffer.writeStaticString(" ")
        buffer.writeString(head.uri)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        var forwardedFor: String? = nil
        var forwardedHost: String? = nil
        for (name, value) in head.headers {
            let kind = HeaderName.classify(name)
            if policy.isHopByHop(name, kind: kind) { continue }
            switch kind {
            case .host:
                forwardedHost = value
            case .expect, .requestID, .forwardedHost, .forwardedProto:
                continue
            case .forwardedFor:
                if keepForwardedFor { forwardedFor = forwardedFor.map { "\($0), \(value)" } ?? value }
                continue
            case .other:
                if !underscores && name.utf8.contains(UInt8(ascii: "_")) { continue }
            default:
                break
            }
            buffer.writeField(name, value)
        }
        if !facts.hasHost { buffer.writeField("host", upstreamAuthority) }
        if let upgrade {
            // A tunnelled upgrade: the one case where these hop-by-hop fields go on.
            buffer.writeField("upgrade", upgrade)
            buffer.writeStaticString("connection: upgrade\r\n")
        }
        buffer.writeStaticString("x-forwarded-for: ")
        if let forwardedFor {
            buffer.writeString(forwardedFor)
            buffer.writeStaticString(", ")
        }
        buffer.writeString(clientAddress)
        if https {
            buffer.writeStaticString("\r\nx-forwarded-proto: https\r\n")
        } else {
            buffer.writeStaticString("\r\nx-forwarded-proto: http\r\n")
        }
        if let forwardedHost { buffer.writeField("x-forwarded-host", forwardedHost) }
        buffer.writeField("x-request-id", requestID)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// A chunk header for a re-chunked request body part: `<hex size>\r\n`.
    static func chunkHeader(_ size: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 18)
        buffer.writeString(String(size, radix: 16))
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The last chunk and trailers of a chunked request body. Trailers pass the same
    /// rules as header fields and more: only ordinary fields go on (RFC 9110 §6.5.1 —
    /// framing, routing, forwarding and hop-by-hop fields are never taken from a
    /// trailer, so a trailer cannot smuggle a `Host` or an `X-Forwarded-For`).
    static func lastChunk(trailers: HTTPHeaders?, underscores: Bool = false, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 5)
        buffer.writeStaticString("0\r\n")
        for (name, value) in trailers ?? [:] {
            guard HeaderName.classify(name) == .other, underscores || !name.utf8.contains(UInt8(ascii: "_")) else { continue }
            buffer.writeField(name, value)
        }
        buffer.writeStaticString("\r\n")
        return buffer
    }
}

extension ByteBuffer {
    mutating func writeField(_ name: String, _ value: RequestID) {
        writeString(name)
        writeStaticString(": ")
        value.withUTF8 { _ = writeBytes($0) }
        writeStaticString("\r\n")
    }

    mutating func writeField(_ name: String, _ value: String) {
        writeString(name)
        writeStaticString(": ")
        writeString(value)
        writeStaticString("\r\n")
    }
}
