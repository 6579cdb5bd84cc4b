import FluxgateCore
import NIOCore

/// Client → upstream, the body: `100 Continue`, framing (Content-Length or chunked,
/// re-chunked when deferred), the spool a body may be held in for a resend, and the
/// bytes sent upstream with backpressure.
extension ProxyHandler {
    /// `100 Continue`, once per request (RFC 9110 §10.1.1).
    func sendContinue(_ exchange: Exchange) {
        guard !exchange.continueSent else { return }
        exchange.continueSent = true
        context.writeAndFlush(wrapOutboundOut(GatewayResponses.continueResponse), promise: nil)
    }

    func requestBody(_ buffer: ByteBuffer) {
        guard case .active(let exchange) = state else { return }
        exchange.bodyBytes += buffer.readableBytes
        if exchange.bodyBytes > limits.maxBodyBytes {
            if exchange.relay.headSent {
                closeClient(.cutOff)
            } else {
                exchange.relay.closeAfterResponse()
                answerForExchange(exchange, .bodyTooLarge)
            }
            return
        }
        exchange.deadlines.clientBodyProgress(now: now)
        if exchange.connection == nil, let spool = exchange.spool {
            // The payload only: a chunked body is framed again as it leaves the spool, in
            // the spool's chunks — so the file holds at most `max_body_bytes` however
            // small the client's chunks were.
            do {
                try spool.append(buffer)
            } catch {
                spoolFailed(exchange, error)
                return
            }
        } else {
            framed(buffer, exchange) { sendUpstream($0, exchange) }
        }
        if exchange.buffering && exchange.spool == nil && exchange.bodyBytes > settings.requestBufferBytes {
            // A chunked body longer than memory holds: on to disk, or (spooling off or
            // the budget taken) admitted now with the rest streaming.
            if case .spool(let reserve) = RequestBodyPlan.chunkedOverflow(maxBodyBytes: limits.maxBodyBytes, spoolBytes: settings.spoolBytes) {
                switch startSpool(exchange, reserve: reserve) {
                case .started: return  // what memory holds goes first, then the spool
                case .budgetTaken: break
                case .failed: return
                }
            }
            frameDeferredBody(exchange)  // the rest streams: chunked it stays
            exchange.buffering = false
            admit(exchange)
        }
    }

    func requestEnd() {
        guard case .active(let exchange) = state else { return }
        exchange.requestComplete = true
        exchange.relay.requestComplete = true
        exchange.deadlines.clientBodyNotWanted()
        if exchange.upstreamFraming == .heldUnframed {
            // No trailer field that would go upstream: the last chunk would be `0\r\n\r\n`.
            if exchange.trailerSection == nil || lastChunk(exchange).readableBytes == 5 {
                // Whole before admission: upstream with its length instead of chunks.
                exchange.upstreamFraming = .asSent
                exchange.upstreamHead = RequestSerializer.withField(
                    "content-length", String(exchange.bodyBytes), dropping: .transferEncoding, from: exchange.upstreamHead ?? ByteBuffer(),
                    allocator: allocator)
            } else {
                frameDeferredBody(exchange)  // trailers travel in chunked framing only
            }
        }
        if exchange.upstreamFraming == .chunked && exchange.spool == nil {
            // (With a spool, the last chunk and trailers follow the spool out: ``pumpSpool(_:)``.)
            sendUpstream(lastChunk(exchange), exchange)
        }
        if exchange.buffering {
            exchange.buffering = false
            exchange.spool?.settle()
            // Whole and still here: an idempotent request keeps it for a resend.
            exchange.bodyHeld = exchange.isIdempotent
            admit(exchange)
            return
        }
        if let connection = exchange.connection {
            connection.flush()
            upstreamNeedsFlush = false
            requestSent(exchange)
        }
    }

    /// Body bytes as they go upstream, to `emit`: as they are, or as one chunk of a
    /// chunked body (re-chunked, never the client's own framing). A held chunked body's
    /// parts wait unframed (``Exchange/UpstreamBodyFraming/heldUnframed``).
    func framed(_ bytes: ByteBuffer, _ exchange: Exchange, _ emit: (ByteBuffer) -> Void) {
        guard exchange.upstreamFraming == .chunked else { return emit(bytes) }
        emit(RequestSerializer.chunkHeader(bytes.readableBytes, allocator: allocator))
        emit(bytes)
        emit(Self.crlf)
    }

    /// A held chunked body goes upstream chunked after all (it outgrew what is held, or
    /// has trailers): the parts held so far become chunks.
    func frameDeferredBody(_ exchange: Exchange) {
        guard exchange.upstreamFraming == .heldUnframed else { return }
        exchange.upstreamFraming = .chunked
        let parts = exchange.pending
        exchange.pending.removeAll(keepingCapacity: true)
        for part in parts { framed(part, exchange) { exchange.pending.append($0) } }
    }

    /// A chunked body's end: the last chunk with its (filtered) trailers. The trailers
    /// stay on the exchange: a held body's resend writes them again.
    func lastChunk(_ exchange: Exchange) -> ByteBuffer {
        RequestSerializer.lastChunk(
            trailerSection: exchange.trailerSection, underscores: settings.underscoresInHeaders, allocator: allocator)
    }

    /// Body bytes (and chunk framing) for the upstream: written now, or held in memory
    /// until connected.
    func sendUpstream(_ bytes: ByteBuffer, _ exchange: Exchange) {
        if let connection = exchange.connection {
            connection.write(bytes)
            upstreamNeedsFlush = true
            exchange.bodyForwarded = true
        } else {
            exchange.pending.append(bytes)
        }
    }

    /// The most read from a spool file at once: what the upstream channel takes before
    /// it stops being writable (NIO's default high-water mark is 64 KiB).
    static let spoolChunk = 65_536

    /// Sends the spooled body to the upstream connection while it is writable; resumed
    /// when it becomes writable again. A chunked body goes out as one chunk per read
    /// and then its last chunk and trailers. Once all of it went, the file is closed
    /// (the reservation given back) — or kept for a resend while the body is held — and
    /// the response head is due.
    func pumpSpool(_ exchange: Exchange) {
        guard let spool = exchange.spool, let connection = exchange.connection else { return }
        var wrote = false
        do {
            while connection.isWritable, let chunk = try spool.nextChunk(max: Self.spoolChunk, allocator: allocator) {
                framed(chunk, exchange) { connection.write($0) }
                wrote = true
            }
        } catch {
            spoolFailed(exchange, error)
            return
        }
        if spool.unsent == 0 {
            exchange.spool = nil
            if exchange.bodyHeld { exchange.sentSpool = spool } else { spool.close() }
            if exchange.upstreamFraming == .chunked { connection.write(lastChunk(exchange)) }
            wrote = true
        }
        if wrote {
            exchange.bodyForwarded = true
            connection.flush()
        }
        if exchange.spool == nil { requestSent(exchange) }
    }

    enum SpoolStart { case started, budgetTaken, failed }

    /// Opens the exchange's spool file, reserving `reserve` bytes of the budget. When
    /// the budget has not that much free the body streams after admission instead;
    /// when the file cannot be created the request is answered 500.
    func startSpool(_ exchange: Exchange, reserve: Int) -> SpoolStart {
        do {
            guard let spool = try BodySpool.open(directory: settings.spoolDirectory, reserve: reserve, runtime: runtime) else {
                stats.traffic.bodySpool(spooled: false)
                return .budgetTaken
            }
            stats.traffic.bodySpool(spooled: true)
            exchange.spool = spool
            return .started
        } catch {
            spoolFailed(exchange, error)
            return .failed
        }
    }

    /// The spool file failed: a full or failing disk is 500 `spool_failed`; no descriptor
    /// left for the file is the gateway's own exhaustion, 503 `gateway_out_of_resources`
    /// as for an upstream connect. A cut when the response had started.
    func spoolFailed(_ exchange: Exchange, _ error: any Error) {
        let exhausted = HealthProbe.isLocalExhaustion(error)
        if exhausted {
            runtime.noteLocalExhaustion(error, now: now)
        } else {
            runtime.noteSpoolFailure(error, now: now)
        }
        if exchange.relay.headSent {
            closeClient(.cutOff)
        } else {
            exchange.relay.closeAfterResponse()
            answerForExchange(exchange, exhausted ? .gatewayOutOfResources : .spoolFailed)
        }
    }
}
