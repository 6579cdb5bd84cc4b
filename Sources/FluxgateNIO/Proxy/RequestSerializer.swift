import FluxgateCore
import NIOCore

/// Writes the request that goes upstream, as bytes (RFC 9110 §7.6 proxy rules).
///
/// Request heads arrive as bytes located by ``RequestHeadParser`` (strict, untrusted
/// input); they leave as one buffer written here by copying the lines that stay:
/// hop-by-hop fields removed (``HopByHopPolicy``), `X-Forwarded-For` appended with the
/// client address, `X-Forwarded-Proto`/`-Host` set, `X-Request-ID` kept or created,
/// `Expect` removed (the gateway answers `100 Continue` itself, as nginx does),
/// HTTP/1.1 upstream whatever the client spoke. Names and values were validated by
/// the parser, so kept lines are copied as they came.
enum RequestSerializer {
    /// What the proxy decides on, taken from the head while its bytes are at hand.
    struct Facts {
        var expectsContinue = false
        var hasHost: Bool { hostCount > 0 }
        var hostCount = 0
        /// The `Host` value, kept only for an absolute-form target (compared with its authority).
        var host: String?
        var contentLength: Int?
        var chunked = false
        /// `Upgrade` present and `Connection` lists `upgrade`: the value, to forward
        /// when the upgrade is allowed.
        var upgrade: String?
        var upgradeRequested: Bool { upgrade != nil }
    }

    static func facts(_ head: borrowing RequestHead, _ bytes: UnsafeRawBufferPointer) -> Facts {
        var facts = Facts()
        facts.expectsContinue = head.expectsContinue
        facts.hostCount = head.hostCount
        facts.contentLength = head.contentLength
        facts.chunked = head.chunked
        if let host = head.host, bytes[head.target.lowerBound] != UInt8(ascii: "/") {
            facts.host = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[host]), as: UTF8.self)
        }
        if head.upgradeRequested, let range = head.upgrade {
            facts.upgrade = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        return facts
    }

    /// The client's `X-Request-ID` when it is acceptable (``RequestIDGenerator/isAcceptable(bytes:)``).
    /// Apart from ``Facts``, which the exchange keeps: the ID is held once, by the
    /// exchange's response relay (each copy is ~150 bytes since it is held in place,
    /// and the exchange object must stay within the allocator's per-thread cache sizes:
    /// docs/PERFORMANCE.md).
    static func requestID(_ head: borrowing RequestHead, _ bytes: UnsafeRawBufferPointer) -> RequestID? {
        guard let range = head.requestID else { return nil }
        let value = UnsafeRawBufferPointer(rebasing: bytes[range])
        return RequestIDGenerator.isAcceptable(bytes: value) ? .client(InlineText(value)) : nil
    }

    /// The fields `Connection` names, when it names any (rare): they are dropped too.
    static func policy(_ head: borrowing RequestHead, _ bytes: UnsafeRawBufferPointer) -> HopByHopPolicy? {
        guard head.connectionNamesFields else { return nil }
        var policy = HopByHopPolicy()
        for field in head.fields where field.kind == .connection {
            policy.noteConnectionHeader(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[field.value]), as: UTF8.self))
        }
        return policy
    }

    /// The upstream head, without a `Host` when the client sent none (added per
    /// upstream by ``withField(_:_:dropping:from:allocator:)``, the rare HTTP/1.0 case).
    /// - Parameters:
    ///   - keepForwardedFor: the peer is a trusted proxy: its `X-Forwarded-For` is kept
    ///     and the peer appended, and its other forwarding fields (`Forwarded`,
    ///     `X-Real-IP`, …) go on; otherwise the header is replaced by the peer alone
    ///     and those fields are dropped.
    ///   - underscores: forward field names containing `_` (else they are dropped).
    ///   - upgrade: forward the client's `Upgrade` (a tunnel is allowed).
    /// The room ``head(_:bytes:requestID:clientAddress:keepForwardedFor:underscores:https:upgrade:into:)``
    /// reserves, and so the capacity to take its buffer with (one figure for both: a
    /// buffer taken smaller was grown again by the reservation): the client's lines go
    /// on at most once, the Host value twice (X-Forwarded-Host), then the gateway's own
    /// fields. Further `X-Forwarded-For` lines of a trusted peer are not counted (rare;
    /// the writer then retries into more room).
    static func headCapacity(
        _ head: borrowing RequestHead, requestID: RequestID, clientAddress: String, upgrade: String?, clientCertificate: String? = nil
    ) -> Int {
        head.length - head.start + 160 + (head.host?.count ?? 0) + clientAddress.utf8.count + requestID.utf8Count
            + 2 * (upgrade?.utf8.count ?? 0) + (clientCertificate.map { $0.utf8.count + 28 } ?? 0)
    }

    static func head(
        _ head: borrowing RequestHead, bytes: UnsafeRawBufferPointer, requestID: RequestID, clientAddress: String,
        keepForwardedFor: Bool = false, underscores: Bool = false, https: Bool = false, upgrade: String? = nil,
        clientCertificate: String? = nil, into buffer: consuming ByteBuffer
    ) -> ByteBuffer {
        let policy = policy(head, bytes)
        let estimate = headCapacity(head, requestID: requestID, clientAddress: clientAddress, upgrade: upgrade, clientCertificate: clientCertificate)
        buffer.writeHead(estimate: estimate) { out in
            // "METHOD SP target SP" as sent — an absolute-form target in origin-form
            // (RequestTarget.originFormStart) — then HTTP/1.1 whatever the client spoke.
            let target = UnsafeRawBufferPointer(rebasing: bytes[head.target])
            if let origin = RequestTarget.originFormStart(target) {
                out.write(UnsafeRawBufferPointer(rebasing: bytes[head.start..<head.target.lowerBound]))
                if origin == target.count || target[origin] == UInt8(ascii: "?") { out.write("/") }
                out.write(UnsafeRawBufferPointer(rebasing: target[origin...]))
                out.write(" ")
            } else {
                out.write(UnsafeRawBufferPointer(rebasing: bytes[head.start..<(head.target.upperBound + 1)]))
            }
            out.write("HTTP/1.1\r\n")
            var forwardedFor: Range<Int>? = nil
            /// Further `X-Forwarded-For` lines (rare), joined after the first in order.
            var moreForwardedFor: String? = nil
            var forwardedHost: Range<Int>? = nil
            for field in head.fields {
                let kind = field.kind
                if kind.isAlwaysHopByHop { continue }
                switch kind {
                case .host:
                    forwardedHost = field.value
                case .expect, .requestID, .forwardedHost, .forwardedProto:
                    continue
                case .forwardedClaim where !keepForwardedFor:
                    continue  // kept from a trusted proxy only (HeaderName.Kind.forwardedClaim)
                case .forwardedFor:
                    if keepForwardedFor {
                        if forwardedFor == nil {
                            forwardedFor = field.value
                        } else {
                            moreForwardedFor =
                                (moreForwardedFor ?? "") + ", " + String(decoding: UnsafeRawBufferPointer(rebasing: bytes[field.value]), as: UTF8.self)
                        }
                    }
                    continue
                case .other, .forwardedClaim, .date:
                    if !underscores && bytes[field.name].contains(UInt8(ascii: "_")) { continue }
                    if let policy, policy.isHopByHop(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[field.name]), as: UTF8.self), kind: kind) {
                        continue
                    }
                default:
                    break
                }
                out.write(UnsafeRawBufferPointer(rebasing: bytes[field.line]))
            }
            if let upgrade {
                // A tunnelled upgrade: the one case where these hop-by-hop fields go on.
                out.write("upgrade: ")
                out.write(upgrade)
                out.write("\r\nconnection: upgrade\r\n")
            }
            out.write("x-forwarded-for: ")
            if let forwardedFor {
                out.write(UnsafeRawBufferPointer(rebasing: bytes[forwardedFor]))
                if let moreForwardedFor { out.write(moreForwardedFor) }
                out.write(", ")
            }
            out.write(clientAddress)
            if https {
                out.write("\r\nx-forwarded-proto: https\r\n")
            } else {
                out.write("\r\nx-forwarded-proto: http\r\n")
            }
            if let clientCertificate {
                // After a trusted proxy's own (kept, as a forwarding claim), so that the
                // list reads from the first client on, as Envoy appends it.
                out.write("x-forwarded-client-cert: ")
                out.write(clientCertificate)
                out.write("\r\n")
            }
            if let forwardedHost {
                out.write("x-forwarded-host: ")
                out.write(UnsafeRawBufferPointer(rebasing: bytes[forwardedHost]))
                out.write("\r\n")
            }
            out.writeField("x-request-id", requestID)
            out.write("\r\n")
        }
        return buffer
    }

    /// `head` (as ``head(_:bytes:requestID:clientAddress:keepForwardedFor:underscores:https:upgrade:into:)``
    /// wrote it: the client's field lines as the parser let them through, then ours)
    /// with `name: value` after its request line and its field lines of kind `dropping`
    /// left out. For `host` per upstream — the upstream's authority for a client that
    /// sent none, an upstream's `host_header` in place of the client's (whose value
    /// stays in `X-Forwarded-Host`) — and for `content-length` in place of
    /// `Transfer-Encoding` (a chunked body read whole before admission).
    static func withField(
        _ name: String, _ value: String, dropping kind: HeaderName.Kind? = nil, from head: ByteBuffer, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var result = allocator.buffer(capacity: head.readableBytes + name.utf8.count + value.utf8.count + 4)
        head.withUnsafeReadableBytes { bytes in
            var start = (bytes.firstIndex(of: 0x0A) ?? (bytes.count - 1)) + 1
            result.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[0..<start]))
            result.writeField(name, value)
            guard let kind else {
                result.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start...]))
                return
            }
            while start < bytes.count, let lf = bytes[start...].firstIndex(of: 0x0A) {
                let line = UnsafeRawBufferPointer(rebasing: bytes[start...lf])
                start = lf + 1
                if let colon = line.firstIndex(of: UInt8(ascii: ":")),
                    HeaderName.classify(UnsafeRawBufferPointer(rebasing: line[..<colon])) == kind
                {
                    continue
                }
                result.writeBytes(line)
            }
        }
        return result
    }

    /// A chunk header for a re-chunked request body part: `<hex size>\r\n`.
    static func chunkHeader(_ size: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 18)
        buffer.writeString(String(size, radix: 16))
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The last chunk and trailers of a chunked request body, from the trailer
    /// section as ``BodyFramer`` checked it (field lines and the final CRLF). Trailers
    /// pass the same rules as header fields and more: only ordinary fields go on
    /// (RFC 9110 §6.5.1 — framing, routing, forwarding and hop-by-hop fields are never
    /// taken from a trailer, so a trailer cannot smuggle a `Host` or an `X-Forwarded-For`).
    static func lastChunk(trailerSection: ByteBuffer?, underscores: Bool = false, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 5 + (trailerSection?.readableBytes ?? 0))
        buffer.writeStaticString("0\r\n")
        trailerSection?.withUnsafeReadableBytes { bytes in
            var start = 0
            while start < bytes.count, let lf = bytes[start...].firstIndex(of: 0x0A) {
                let line = start..<(lf + 1)
                start = lf + 1
                guard let colon = bytes[line].firstIndex(of: UInt8(ascii: ":")) else { continue }
                let name = UnsafeRawBufferPointer(rebasing: bytes[line.lowerBound..<colon])
                let kind = HeaderName.classify(name)
                guard kind == .other || kind == .date, underscores || !name.contains(UInt8(ascii: "_")) else { continue }
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[line]))
            }
        }
        buffer.writeStaticString("\r\n")
        return buffer
    }
}

extension ByteBuffer {
    mutating func writeField(_ name: String, _ value: String) {
        writeString(name)
        writeStaticString(": ")
        writeString(value)
        writeStaticString("\r\n")
    }
}
