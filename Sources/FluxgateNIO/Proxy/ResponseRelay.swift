import FluxgateCore
import NIOCore

/// Turns an upstream's response bytes into the client's response bytes.
///
/// The head is located and checked by ``ResponseHeadParser`` and rewritten by copying
/// the kept field lines as they are; the body is passed through as buffer slices
/// (no copy) while ``BodyFramer`` finds where it ends. Two transformations of framing:
/// HTTP/1.0 clients, which cannot read chunked framing, get the payload alone and the
/// connection closes at its end (RFC 9112 §6.3); and a body the upstream ends by
/// closing its connection goes to a keep-alive HTTP/1.1 client chunked, so the client's
/// connection outlives the upstream's (as nginx does).
struct ResponseRelay {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case invalidHead(String)
        case invalidBody(BodyFramer.Failure)
        case unexpectedUpgrade

        /// What was wrong with the response, for the access log's `detail` and the
        /// error log (the client's 502 does not name it).
        var description: String {
            switch self {
            case .invalidHead(let reason): reason
            case .invalidBody(let failure): "chunked body: \(failure)"
            case .unexpectedUpgrade: "101 Switching Protocols to a request that did not ask to upgrade"
            }
        }
    }

    private enum Phase {
        case head
        case body
        case done
        /// A 101 to an upgrade request went out: from here bytes are another protocol's.
        case switched
    }

    private var phase = Phase.head
    private var partialHead: ByteBuffer?
    private var framer = BodyFramer(.none)
    private var dechunk = false
    /// The upstream's body ends at its close; the client gets it as chunks and a last
    /// chunk when the close comes (``upstreamClosed(emit:)``), and keeps its connection.
    private var rechunk = false
    private let requestWasHead: Bool
    private let clientHTTP10: Bool
    let requestID: RequestID
    /// Whether the client connection stays open after this response.
    private(set) var clientKeepAlive: Bool
    private var initialClientKeepAlive: Bool
    /// Whether the upstream connection can serve another request afterwards.
    private(set) var upstreamReusable = true
    private(set) var headSent = false
    /// The upstream sent bytes past the end of the response (in the same read): not a
    /// reason to fail the response, which was whole, but its connection is not reused.
    private(set) var bytesAfterEnd = false
    /// The final response's status, once its head arrived.
    private(set) var status: Int?
    /// Set when `retry` claimed the response: nothing of it was sent to the client.
    private(set) var discardedForRetry = false
    /// The client's request was fully read; if the response starts before that, the
    /// rest of the request is not read and the client connection closes after it.
    var requestComplete = false
    /// The request asked to upgrade and the gateway may tunnel it: a 101 is relayed
    /// (with its `Upgrade` and `Connection`) instead of refused.
    var upgradeAllowed = false
    /// A 101 went to the client; ``switchedBytes`` holds what followed it in the same read.
    var switched: Bool { phase == .switched }
    private(set) var switchedBytes: ByteBuffer?
    static let maxHeadBytes = 65_536
    /// Bodies up to this size are copied behind the head instead of written separately.
    static let coalesceLimit = 4_096

    init(requestWasHead: Bool, clientHTTP10: Bool, clientKeepAlive: Bool, requestID: RequestID) {
        self.requestWasHead = requestWasHead
        self.clientHTTP10 = clientHTTP10
        self.clientKeepAlive = clientKeepAlive
        self.initialClientKeepAlive = clientKeepAlive
        self.requestID = requestID
    }

    /// A relay for the same request, for a second attempt on another upstream.
    /// The response (not started yet) is the connection's last: it goes out with
    /// `Connection: close` (a graceful drain, a refused body).
    mutating func closeAfterResponse() {
        guard !headSent else { return }
        clientKeepAlive = false
        initialClientKeepAlive = false
    }

    func restarted() -> ResponseRelay {
        var relay = ResponseRelay(
            requestWasHead: requestWasHead, clientHTTP10: clientHTTP10, clientKeepAlive: initialClientKeepAlive, requestID: requestID)
        relay.requestComplete = requestComplete
        return relay
    }

    /// Feeds bytes from the upstream; `emit` receives what goes to the client.
    /// Returns true once the response is complete — or once `retry` claimed it: a final
    /// head whose status `retry` accepts is not forwarded at all (``discardedForRetry``),
    /// and the upstream connection is not reused.
    ///
    /// `scratch` (the event loop's, ``LoopScratch``) lends the storage for the client's
    /// response head and the parsed field list; each is handed back as it goes out.
    mutating func receive(
        _ input: ByteBuffer, allocator: ByteBufferAllocator, scratch: LoopScratch? = nil, now: MonotonicTime, retry: (Int) -> Bool = { _ in false },
        emit: (ByteBuffer) -> Void
    ) throws(Failure) -> Bool {
        var buffer = input
        // A new head is held back briefly so that a small body read with it leaves in
        // the same buffer: one write(2) instead of a writev(2) of two.
        var heldHead: ByteBuffer? = nil
        func emitHead(_ head: ByteBuffer) {
            scratch?.keepResponseHead(head)
            emit(head)
        }
        defer { if let heldHead { emitHead(heldHead) } }
        while buffer.readableBytes > 0 {
            switch phase {
            case .head:
                if var partial = partialHead {
                    partial.writeBuffer(&buffer)
                    buffer = partial
                    partialHead = nil
                }
                var fieldStorage: [ResponseHead.Field] = []
                if let scratch { swap(&fieldStorage, &scratch.responseFields) }
                let outcome = buffer.withUnsafeReadableBytes {
                    ResponseHeadParser.parse($0, maxLength: Self.maxHeadBytes, fieldStorage: &fieldStorage)
                }
                if let scratch, fieldStorage.capacity > 0 { swap(&fieldStorage, &scratch.responseFields) }  // not used: back
                switch outcome {
                case .incomplete:
                    partialHead = buffer
                    return false
                case .invalid(let reason):
                    throw .invalidHead(reason)
                case .complete(let head):
                    defer { scratch?.responseFields = head.fields }
                    if head.status == 101 {
                        guard upgradeAllowed else { throw .unexpectedUpgrade }
                        status = 101
                        headSent = true
                        emit(buffer.withUnsafeReadableBytes { switchingHead(head, bytes: $0, allocator: allocator) })
                        buffer.moveReaderIndex(forwardBy: head.length)
                        if buffer.readableBytes > 0 { switchedBytes = buffer }
                        upstreamReusable = false
                        phase = .switched
                        return true
                    }
                    if head.isInformational {
                        // 100/103 interim answers are dropped; the final one follows.
                        buffer.moveReaderIndex(forwardBy: head.length)
                        continue
                    }
                    status = head.status
                    if retry(head.status) {
                        discardedForRetry = true
                        upstreamReusable = false
                        phase = .done
                        return true
                    }
                    let clientHead = buffer.withUnsafeReadableBytes { bytes in
                        self.clientHead(head, bytes: bytes, allocator: allocator, scratch: scratch, now: now)
                    }
                    heldHead = clientHead
                    headSent = true
                    buffer.moveReaderIndex(forwardBy: head.length)
                    phase = framer.isComplete ? .done : .body
                }
            case .body:
                let consumed: Int
                do {
                    if dechunk {
                        var gather = PayloadGather()
                        consumed = try buffer.withUnsafeReadableBytes { bytes throws(BodyFramer.Failure) in
                            try framer.consume(bytes) { gather.add($0, of: bytes, allocator: allocator) }
                        }
                        if let head = heldHead {
                            emitHead(head)
                            heldHead = nil
                        }
                        if let payload = gather.payload(of: buffer) { emit(payload) }
                        buffer.moveReaderIndex(forwardBy: consumed)
                    } else {
                        consumed = try buffer.withUnsafeReadableBytes { bytes throws(BodyFramer.Failure) in
                            try framer.consume(bytes) { _ in }
                        }
                        if consumed > 0 && rechunk {
                            // The chunk's size line goes behind the held head (or in a
                            // buffer of its own), with the payload too when it is small.
                            var slice = buffer.readSlice(length: consumed)!
                            let small = consumed <= Self.coalesceLimit
                            let wasHead = heldHead != nil
                            var framed = heldHead.take() ?? allocator.buffer(capacity: small ? consumed + 12 : 12)
                            framed.writeString(String(consumed, radix: 16))
                            framed.writeStaticString("\r\n")
                            if small {
                                framed.writeBuffer(&slice)
                                framed.writeStaticString("\r\n")
                            }
                            if wasHead { emitHead(framed) } else { emit(framed) }
                            if !small {
                                emit(slice)
                                emit(Self.crlf)
                            }
                        } else if consumed > 0 {
                            var slice = buffer.readSlice(length: consumed)!
                            if heldHead != nil && consumed <= Self.coalesceLimit {
                                heldHead!.writeBuffer(&slice)
                            } else {
                                if let head = heldHead {
                                    emitHead(head)
                                    heldHead = nil
                                }
                                emit(slice)
                            }
                        }
                    }
                } catch {
                    throw .invalidBody(error)
                }
                if framer.isComplete { phase = .done }
            case .done, .switched:
                // Bytes after the end of the response: the upstream broke framing,
                // so its connection cannot be trusted with another request.
                upstreamReusable = false
                if phase == .done { bytesAfterEnd = true }
                return true
            }
        }
        return phase == .done
    }

    /// The upstream closed the connection; true if that legitimately ends the response
    /// (`emit` receives the last chunk of a body the relay re-chunked).
    mutating func upstreamClosed(emit: (ByteBuffer) -> Void) -> Bool {
        if phase == .body && framer.endsAtClose {
            phase = .done
            if rechunk { emit(Self.lastChunk) }
        }
        return phase == .done
    }

    private static let crlf = ByteBuffer(string: "\r\n")
    private static let lastChunk = ByteBuffer(string: "0\r\n\r\n")

    /// The 101 as the client gets it: the upstream's fields with `Upgrade` and
    /// `Connection` kept (they are the point of it), other hop-by-hop fields removed.
    private func switchingHead(_ head: ResponseHead, bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> ByteBuffer {
        let estimate = head.length + requestID.utf8Count + HeadWriter.endHeadBytes
        var buffer = allocator.buffer(capacity: estimate)
        buffer.writeHead(estimate: estimate) { out in
            out.write("HTTP/1.1")
            out.write(UnsafeRawBufferPointer(rebasing: bytes[8..<head.statusLineLength]))
            for field in head.fields {
                let kind = field.kind
                if (kind.isAlwaysHopByHop && kind != .upgrade && kind != .connection) || kind == .requestID { continue }
                out.write(UnsafeRawBufferPointer(rebasing: bytes[field.line]))
            }
            // No Connection of the gateway's: the upstream's `Connection: upgrade` went on.
            out.endHead(requestID: requestID, close: false, http10: false)
        }
        return buffer
    }

    private mutating func clientHead(
        _ head: ResponseHead, bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator, scratch: LoopScratch?, now: MonotonicTime
    ) -> ByteBuffer {
        let framing = head.framing(requestWasHead: requestWasHead)
        framer = BodyFramer(framing)
        if !requestComplete { clientKeepAlive = false }
        var dropTransferEncoding = false
        // RFC 9110 §8.6 / RFC 9112 §6.1: a 204 carries neither field (nginx removes them
        // too); a client that believed them would wait for a body that never comes.
        let dropFraming = head.status == 204
        switch framing {
        case .chunked where clientHTTP10:
            dechunk = true
            dropTransferEncoding = true
            clientKeepAlive = false
        case .untilClose:
            upstreamReusable = false
            // Re-chunked for a client that keeps its connection (a transfer coding other
            // than chunked, rare, is left as it is: the client's connection closes too).
            if clientKeepAlive && !clientHTTP10 && !head.hasTransferEncoding {
                rechunk = true
            } else {
                clientKeepAlive = false
            }
        default:
            break
        }
        if !head.keepsConnection || head.announcesUnsentBody(requestWasHead: requestWasHead) { upstreamReusable = false }
        // The upstream was asked to switch protocols (the Upgrade went with the request)
        // and answered in HTTP instead: servers built on llhttp (NIO, Node) stop parsing
        // HTTP on that connection after an upgrade request whatever they answered, so
        // the next request sent on it would wait forever — found by sending a WebSocket
        // upgrade to the demo upstream, which answered 404 and then ignored the next
        // request. The connection is closed instead of pooled.
        if upgradeAllowed { upstreamReusable = false }

        // RFC 9110 §6.6.1: a response forwarded without `Date` gets one (nginx writes
        // its own on every response; HAProxy adds none). The loop's line for this second.
        let date = head.hasDate ? nil : scratch?.dateField(now: now)
        let estimate = head.length + requestID.utf8Count + HeadWriter.endHeadBytes + (date?.readableBytes ?? 0) + (rechunk ? 28 : 0)
        var buffer = scratch?.takeResponseHead(capacity: estimate, allocator: allocator) ?? allocator.buffer(capacity: estimate)
        buffer.writeHead(estimate: estimate) { out in
            // HTTP/1.1 to an HTTP/1.0 client too (RFC 9110 §6.2: a server SHOULD send
            // the highest version it conforms to with the request's major version; nginx
            // does): the framing and `Connection` below are what keep it readable as 1.0.
            out.write("HTTP/1.1")
            out.write(UnsafeRawBufferPointer(rebasing: bytes[8..<head.statusLineLength]))
            for field in head.fields {
                let kind = field.kind
                if kind.isAlwaysHopByHop || kind == .requestID { continue }
                if kind == .transferEncoding && dropTransferEncoding { continue }
                if dropFraming && (kind == .contentLength || kind == .transferEncoding) { continue }
                if !head.connectionTokens.isEmpty && !kind.isProtected {
                    // Rare (a Connection header naming extra fields): only then build a String.
                    let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[field.name]), as: UTF8.self).lowercased()
                    if head.connectionTokens.contains(name) { continue }
                }
                out.write(UnsafeRawBufferPointer(rebasing: bytes[field.line]))
            }
            if let date { out.write(date) }
            if rechunk { out.write("transfer-encoding: chunked\r\n") }
            out.endHead(requestID: requestID, close: !clientKeepAlive, http10: clientHTTP10)
        }
        return buffer
    }
}
