import FluxgateCore
import NIOCore

/// Client → upstream: the client's bytes read, request heads parsed in place, refused
/// or handed to admission, the upstream request head written (the body:
/// ProxyHandler+RequestBody.swift).
extension ProxyHandler {
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .closing, .tunnelled: return
        default: break
        }
        withEventTime { clientBytes(unwrapInboundIn(data)) }
    }

    func clientBytes(_ data: ByteBuffer) {
        var bytes = data
        if idleListing != nil { unlistIdle() }
        if clientTimeouts?.phase == .idle {
            let now = self.now
            clientTimeoutEvent { $0.bytesReceived(now: now) }
        }
        let lineEnded = partialHead != nil && bytes.withUnsafeReadableBytes { $0.contains(0x0A) }
        if receive == nil {
            receive = bytes
        } else {
            if receive!.writableBytes < bytes.readableBytes && receive!.readerIndex > 0 {
                // The front was consumed (requests served from it): move what is left
                // there before appending, else the buffer doubles around bytes already
                // handled — a pipeliner's buffer reached 128 KiB holding ~64 KiB
                // (heaptrack, docs/results/by-hand-2026-12-03c).
                receive!.discardReadBytes()
            }
            receive!.writeBuffer(&bytes)
            scratch.keepReceiveBuffer(data)  // copied: lent back to the loop
        }
        // A head still arriving is parsed again only once a line of it ended (or it
        // passed the limit): linear in its length however it is cut into reads.
        if partialHead != nil && !lineEnded && receive!.readableBytes <= headRecheckBytes {
            accountStall()
            return
        }
        processInput()
    }

    /// A head still arriving is parsed again once a line of it ended or it holds more
    /// than this (then the parser refuses it as too large); reads between requests go
    /// on up to it (``mayRead``), so the two must agree.
    var headRecheckBytes: Int { limits.maxHeaderBytes + 64 }

    /// Whether input can be handled now: between requests, or while the current
    /// request is still arriving. The next request waits for this one's answer.
    var acceptsInput: Bool {
        switch state {
        case .idle: true
        case .active(let exchange): !exchange.requestComplete
        case .closing, .tunnelled: false
        }
    }

    /// Drops the receive buffer, lending it back to the loop for its next read
    /// (``CompactRecvAllocator``): an idle connection holds none.
    func releaseReceive() {
        if let buffer = receive.take() { scratch.keepReceiveBuffer(buffer) }
    }

    /// Parses and forwards what the receive buffer holds, as far as the state allows.
    /// Not re-entered: an answer given synchronously while a head is being handled
    /// (a refused connect, a shed) finishes inside it, and the outer loop goes on.
    func processInput() {
        guard !processing else { return }
        processing = true
        defer {
            processing = false
            accountStall()
        }
        while true {
            switch state {
            case .closing, .tunnelled:
                releaseReceive()
                return
            case .idle:
                guard !parsingStopped, let input = receive, input.readableBytes > 0 else {
                    releaseReceive()
                    if let refusal = inputRefusal {
                        inputRefused(refusal)
                    } else if clientInputClosed {
                        closeClient()
                    }
                    return
                }
                // The next request waits while the answers already written wait for the
                // client (NIO's write buffer past its high watermark): a client that
                // pipelines without reading would otherwise have the gateway answer
                // everything it sent and hold the answers in memory — hundreds of MB from
                // one connection. `channelWritabilityChanged` goes on; meanwhile
                // `timeouts.client_send` runs (``ClientConnectionTimeouts``).
                guard clientIsWritable else { return }
                guard parseHead(input) else { return }
            case .active(let exchange):
                guard !exchange.requestComplete, let input = receive, input.readableBytes > 0 else {
                    if receive?.readableBytes == 0 { releaseReceive() }
                    if let refusal = inputRefusal, !exchange.requestComplete { inputRefused(refusal) }
                    return
                }
                guard consumeBody(input, exchange) else { return }
            }
        }
    }

    /// One head from the start of `input`; false when it is not complete (or was refused).
    func parseHead(_ input: ByteBuffer) -> Bool {
        let limit = limits.maxHeaderBytes
        // Taken, not referenced: a parse nested in another connection's would find the
        // loop's head gone and use a new one, never share it.
        let box = partialHead.take()
        var head = box.map { box in
            var held = RequestHead()
            swap(&held, &box.head)
            return held
        } ?? scratch.takeRequestHead()
        let outcome = input.withUnsafeReadableBytes { RequestHeadParser.parse($0, maxLength: limit, into: &head) }
        switch outcome {
        case .incomplete:
            let kept = box ?? PartialRequestHead()
            swap(&kept.head, &head)
            partialHead = kept
            if let refusal = inputRefusal { inputRefused(refusal) }
            return false
        case .invalid(let refusal):
            let line = input.withUnsafeReadableBytes { head.refusedLine(in: $0, for: refusal) }
            head.reset()
            scratch.keepRequestHead(consume head)
            inputRefused(refusal, line: line)
            return false
        case .complete:
            if head.fields.count > limits.maxHeaderCount {
                // Counted after the parse: the head is already bounded by its bytes, and
                // the parser stays exactly as strict as llhttp, which has no count limit.
                let line = input.withUnsafeReadableBytes { head.refusedLine(in: $0, for: .tooManyFields) }
                head.reset()
                scratch.keepRequestHead(consume head)
                inputRefused(.tooManyFields, line: line)
                return false
            }
            let length = head.length
            withUnsafeMutablePointer(to: &head) { pointer in
                headPointer = pointer
                defer { headPointer = nil }
                input.withUnsafeReadableBytes { bytes in
                    requestHead(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
                }
            }
            head.reset()
            scratch.keepRequestHead(consume head)
            receive?.moveReaderIndex(forwardBy: length)
            return true
        }
    }

    /// Body bytes from the start of `input`, as far as this request's framing goes;
    /// false when nothing more can be done until more bytes arrive.
    func consumeBody(_ input: ByteBuffer, _ exchange: Exchange) -> Bool {
        var framer = exchange.bodyFramer
        var gather = PayloadGather()
        let consumed: Int
        do {
            consumed = try input.withUnsafeReadableBytes { bytes in
                try framer.consume(
                    bytes,
                    payload: { range in gather.add(range, of: bytes, allocator: allocator) },
                    trailer: { range in
                        var section = exchange.trailerSection ?? allocator.buffer(capacity: range.count)
                        section.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
                        exchange.trailerSection = section
                    })
            }
        } catch {
            exchange.bodyFramer = framer
            inputRefused(.malformed("invalid chunked body: \(error)"))
            return false
        }
        exchange.bodyFramer = framer
        if let payload = gather.payload(of: input) { requestBody(payload) }
        guard case .active(let current) = state, current === exchange else { return true }
        receive?.moveReaderIndex(forwardBy: consumed)
        if framer.isComplete {
            requestEnd()
            return true
        }
        if receive?.readableBytes == 0 { releaseReceive() }
        return false
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if upstreamNeedsFlush, case .active(let exchange) = state {
            upstreamNeedsFlush = false
            exchange.connection?.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Pipelined bytes waiting behind the current request.
    var queuedBytes: Int {
        if case .active(let exchange) = state, !exchange.requestComplete { return 0 }
        return receive?.readableBytes ?? 0
    }

    func requestHead(_ bytes: UnsafeRawBufferPointer) {
        guard case .idle = state else { return }
        clientTimeoutEvent { $0.requestHeadReceived() }
        refreshSettings()
        let facts = withHead { RequestSerializer.facts($0, bytes) }
        let requestID = withHead { RequestSerializer.requestID($0, bytes) } ?? pool.nextRequestID()
        let http10 = head.isHTTP10
        let now = self.now
        let target = UnsafeRawBufferPointer(rebasing: bytes[head.target])
        var keepAlive = head.keepsAlive && !draining
        // The connection's last request at `limits.max_requests_per_connection` or
        // `timeouts.max_connection_age`: answered with `Connection: close`.
        if let last = reuse.requestStarted(now: now, limits: settings.connectionReuse), keepAlive {
            keepAlive = false
            stats.traffic.connectionRecycled(last)
        }
        let exchange = Exchange(
            method: head.method, target: Exchange.Target(target), framing: head.framing, facts: facts, clientHTTP10: http10,
            clientKeepAlive: keepAlive, requestID: requestID, live: runtime.live, now: now,
            limits: settings.exchangeLimits)
        state = .active(exchange)
        // `timeouts.request` runs from the head on, through every phase — the body read
        // before admission, the queue, a connect — so it is armed here, not left to the
        // next phase that arms a deadline of its own (until 2026-12-07 nothing armed it in
        // the queue: it ran out there only at the connection timer's next stride).
        if exchange.deadlines.limits.$request > 0 { armExchangeTimer(exchange) }
        if exchange.bodyFramer.isComplete {
            // No body: the request is whole with its head.
            exchange.requestComplete = true
            exchange.relay.requestComplete = true
            exchange.deadlines.clientBodyNotWanted()
        }
        exchange.client = clientAddress
        if limits.hasTrustedProxies, peerTrusted {
            exchange.peerTrusted = true
            exchange.client = settings.trustedProxies.clientAddress(peer: clientAddress, peerTrusted: true) { value in
                for field in head.fields where field.kind == .forwardedFor { value(UnsafeRawBufferPointer(rebasing: bytes[field.value])) }
            }
        }
        if settings.perClientLimited { exchange.clientKey = clientKey(exchange, bytes) }
        if facts.upgradeRequested || head.method == .CONNECT {
            parsingStopped = true
            exchange.relay.closeAfterResponse()
            if let upgrade = facts.upgrade, head.method == .GET, settings.maxTunnels > 0,
                settings.config.limits.upgradeProtocols.allow(upgrade), runtime.reserveTunnel(max: settings.maxTunnels)
            {
                // Forwarded with its Upgrade; a 101 turns the connection into a tunnel.
                // Any other upgrade (`h2c`, a protocol not listed) is served as an
                // ordinary request with its Upgrade removed (UpgradeProtocols).
                exchange.tunnelReserved = true
                exchange.relay.upgradeAllowed = true
            }
        }
        if let refusal = refusal(exchange, facts: facts, http10: http10, target: target) {
            exchange.relay.closeAfterResponse()
            answerForExchange(exchange, refusal)
            return
        }
        if let length = facts.contentLength, length > limits.maxBodyBytes {
            exchange.relay.closeAfterResponse()
            answerForExchange(exchange, .bodyTooLarge)
            return
        }
        headInProgress = bytes
        defer { headInProgress = nil }
        if (facts.contentLength ?? 0) > 0 || facts.chunked {
            exchange.deadlines.clientBodyProgress(now: now)
            armExchangeTimer(exchange)
            // Read the body whole first, in memory or on disk: a slow uploader holds no
            // admission slot (``RequestBodyPlan``).
            let plan = RequestBodyPlan.atHead(
                contentLength: facts.contentLength, chunked: facts.chunked, memoryBytes: settings.requestBufferBytes,
                spoolBytes: settings.spoolBytes, streamed: RequestTarget.matchesAny(settings.streamBodyPrefixes, target: target))
            if plan != .admitNow, facts.expectsContinue, !http10, refusedBeforeContinue(exchange) { return }
            var buffer = plan == .memory
            if case .spool(let reserve) = plan {
                switch startSpool(exchange, reserve: reserve) {
                case .started: buffer = true
                case .budgetTaken: break
                case .failed: return
                }
            }
            if buffer {
                exchange.buffering = true
                if exchange.upstreamFraming == .chunked { exchange.upstreamFraming = .heldUnframed }
                prepareUpstreamHead(exchange)
                if facts.expectsContinue && !http10 { sendContinue(exchange) }
                return
            }
        }
        admit(exchange)
    }

    /// Serializes the upstream head while the client's head bytes are at hand (during
    /// ``requestHead(_:)``): when the request is admitted, queued or buffered — never
    /// for a shed or refused one.
    func prepareUpstreamHead(_ exchange: Exchange) {
        guard exchange.upstreamHead == nil, let bytes = headInProgress else { return }
        let upgrade = exchange.tunnelReserved ? exchange.facts.upgrade : nil
        let (requestID, underscores) = (exchange.requestID, settings.underscoresInHeaders)
        exchange.upstreamHead = withHead { head in
            let capacity = RequestSerializer.headCapacity(
                head, requestID: requestID, clientAddress: clientAddress, upgrade: upgrade, clientCertificate: forwardedClientCertificate)
            return RequestSerializer.head(
                head, bytes: bytes, requestID: requestID, clientAddress: clientAddress, keepForwardedFor: exchange.peerTrusted,
                underscores: underscores, https: https, upgrade: upgrade, clientCertificate: forwardedClientCertificate,
                into: scratch.takeUpstreamHead(capacity: capacity, allocator: allocator))
        }
    }

    /// The head being handled — it lives in ``parseHead(_:)``'s frame, reached through
    /// ``headPointer`` — lent to `body` in place. Passed to a `borrowing` parameter
    /// straight from the pointer it was copied (a retain and release of its field list,
    /// twice per request) whatever the spelling (the pointee, an addressor, `_read`); an
    /// `inout` argument is passed by address, and the serializer borrows it from there
    /// without a copy. `body` changes nothing.
    @inline(__always)
    func withHead<T>(_ body: (inout RequestHead) -> T) -> T {
        body(&headPointer!.pointee)
    }

    /// The per-client rate-limit key: the configured header's value, else the client's
    /// address (an IPv6 one as its `limits.client_ipv6_prefix` network).
    /// Header keys and address keys live in separate namespaces (``RateLimitKey``).
    func clientKey(_ exchange: Exchange, _ bytes: UnsafeRawBufferPointer) -> ClientKey {
        if let name = settings.clientKeyHeader {
            // Any field may be the key (as before: also one the proxy treats specially);
            // the first occurrence counts.
            for field in head.fields where HeaderName.equalsLowercase(UnsafeRawBufferPointer(rebasing: bytes[field.name]), name) {
                return RateLimitKey.header(UnsafeRawBufferPointer(rebasing: bytes[field.value]))
            }
        }
        // The address key is the connection's until the client address changes (behind
        // a trusted proxy, each request may name another): made once, not per request.
        if let known = addressKey, known.address == exchange.client { return known.key }
        let key = RateLimitKey.address(AddressRange.clientKey(exchange.client, ipv6Prefix: settings.config.limits.clientIPv6Prefix))
        addressKey = (exchange.client, key)
        return key
    }

    /// Requests refused before admission, on their head alone (docs/SECURITY.md).
    func refusal(_ exchange: Exchange, facts: RequestSerializer.Facts, http10: Bool, target: UnsafeRawBufferPointer) -> GatewayAnswer? {
        if clientCertificateMissing { return .clientCertificateRequired }
        if exchange.method == .CONNECT { return .methodNotAllowed }
        if exchange.method == .TRACE && !settings.config.limits.allowTrace { return .traceNotAllowed }
        // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0, and the
        // authority of an absolute-form target wins — they must agree.
        if facts.hostCount > 1 || (!http10 && facts.hostCount == 0) { return .badHost }
        if let host = facts.host, RequestTarget.hostDisagrees(target: exchange.target.string, host: host) { return .badHost }
        if RequestTarget.climbsAboveRoot(bytes: target) { return .badPath }
        return nil
    }
}

/// A request head received in part, kept by its connection until the rest arrives.
final class PartialRequestHead {
    var head = RequestHead()
}

@available(*, unavailable)
extension PartialRequestHead: Sendable {}
