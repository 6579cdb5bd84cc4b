import FluxgateCore
import FluxgateNIOSupport
import NIOCore

/// The gateway's own answers, the end of a response, refused input, the client's close
/// and read resumption (pipelining, backpressure).
extension ProxyHandler {
    /// Answers an active exchange with the gateway's own response.
    func answerForExchange(_ exchange: Exchange, _ kind: GatewayAnswer, detail: String? = nil) {
        let keepAlive = exchange.relay.clientKeepAlive && exchange.requestComplete && !draining
        var bytes = scratch.takeAnswer(capacity: 512, allocator: allocator)
        runtime.responses.response(
            kind, requestID: exchange.requestID, close: !keepAlive, http10: exchange.clientHTTP10,
            includeBody: !exchange.isHeadRequest, detail: detail, date: scratch.dateField(now: now), into: &bytes)
        exchange.bytesSent += bytes.readableBytes
        end(exchange, .gatewayAnswer(status: Int(kind.status.code)))
        scratch.keepAnswer(bytes)
        context.write(wrapOutboundOut(bytes), promise: nil)
        finishResponse(keepAlive: keepAlive)
    }

    /// An answer outside any exchange (a request that could not be parsed); its size.
    @discardableResult
    func answer(_ kind: GatewayAnswer, requestID: RequestID?, http10: Bool, close: Bool, isHead: Bool, detail: String? = nil) -> Int {
        var bytes = scratch.takeAnswer(capacity: 512, allocator: allocator)
        runtime.responses.response(
            kind, requestID: requestID, close: close, http10: http10, includeBody: !isHead, detail: detail, date: scratch.dateField(now: now),
            into: &bytes)
        let size = bytes.readableBytes
        scratch.keepAnswer(bytes)
        context.write(wrapOutboundOut(bytes), promise: nil)
        finishResponse(keepAlive: !close)
        return size
    }

    /// The access-log line for input answered before it made a request head (sampled as
    /// requests are): `detail` is the answer's kind and, for a 400, the parser's rule;
    /// `line` the method and target when the request line was read.
    func logRefusal(_ kind: GatewayAnswer, line: RefusedRequestLine? = nil, bytes: Int, detail: String?) {
        let accessLog = runtime.accessLog
        guard accessLog.isEnabled, accessLog.sampled(pool.nextJitter() * 2) else { return }
        accessLog.logRefusal(
            client: clientAddress, clientCertificate: clientCertificateSubject, line: line, status: Int(kind.status.code), bytes: bytes,
            detail: detail.map { "\(kind.rawValue): \($0)" } ?? kind.rawValue)
    }

    /// The answer to the current request was written (the exchange, if any, has already
    /// ended): keep the connection for the next request, or close it.
    func finishResponse(keepAlive: Bool) {
        guard keepAlive && !clientInputClosed && !draining else {
            state = .closing
            // A lingering close: request bytes may still be arriving (a refused body, a
            // pipelined request), and closing on unread input would reset the answer away.
            // The empty write completes once everything before it is on the wire; a
            // client that stops taking the rest is closed after `timeouts.client_send`.
            let send = TimeAmount.nanoseconds(settings.config.timeouts.clientSend.nanosecondsClamped)
            context.writeThenLingeringClose(
                allocator.buffer(capacity: 0), timeout: lingerTimeout, writeTimeout: max(send, lingerTimeout, .seconds(5)))
            return
        }
        state = .idle
        context.flush()
        let now = self.now
        clientTimeoutEvent { $0.responseCompleted(now: now) }
        if parsingStopped, let refusal = inputRefusal {
            parsingStopped = false
            inputRefused(refusal)
            return
        }
        processInput()
        resumeReadsIfPossible()
    }

    /// The input cannot be read on from here (a malformed or oversized head, a broken
    /// chunked body, or NIOHTTP1's refusal with `parser: llhttp`): answer 400/414/431/505 unless
    /// the current response already started, in which case closing is the only signal.
    func inputRefused(_ refusal: RequestHeadParser.Refusal, line: RefusedRequestLine? = nil) {
        inputRefusal = nil
        releaseReceive()
        let (kind, counted): (GatewayAnswer, HeadRefusal) =
            switch refusal {
            case .tooLarge: (.headersTooLarge, .headersTooLarge)
            case .uriTooLong: (.uriTooLong, .uriTooLong)
            case .tooManyFields: (.tooManyHeaders, .headersTooLarge)
            case .versionNotSupported: (.versionNotSupported, .versionNotSupported)
            case .methodNotImplemented: (.methodNotImplemented, .methodNotImplemented)
            case .malformed: (.badRequest, .badRequest)
            }
        let detail: String? = if case .malformed(let reason) = refusal { reason } else { nil }
        switch state {
        case .idle:
            stats.traffic.refused(counted)
            let bytes = answer(kind, requestID: nil, http10: false, close: true, isHead: false, detail: detail)
            logRefusal(kind, line: line, bytes: bytes, detail: detail)
        case .active(let exchange):
            if exchange.relay.headSent {
                closeClient(.cutOff)
            } else if !exchange.requestComplete {
                stats.traffic.refused(counted)
                exchange.relay.closeAfterResponse()
                answerForExchange(exchange, kind, detail: detail)
            } else {
                // A later request was malformed: answered in order, after this one.
                inputRefusal = refusal
                parsingStopped = true
            }
        case .closing, .tunnelled:
            break
        }
    }

    /// Closes the client connection after what was already written (a truncated
    /// response still reaches the client, which sees its framing cut short). An exchange
    /// still running ends as `end`.
    func closeClient(_ end: ExchangeLifecycle.End = .clientGone) {
        if case .active(let exchange) = state { self.end(exchange, end) }
        state = .closing
        context.flush()
        context.close(promise: nil)
    }

    func resumeReadsIfPossible() {
        guard readPending, mayRead else { return }
        readPending = false
        accountStall()
        if case .active(let exchange) = state, !exchange.requestComplete {
            // The body's clock restarts: the pause was the gateway's, not the client's.
            exchange.deadlines.clientBodyProgress(now: now)
        }
        context.read()
    }

    var mayRead: Bool {
        if case .active(let exchange) = state {
            if !exchange.requestComplete {
                if exchange.buffering { return true }
                guard let connection = exchange.connection, connection.isWritable else { return false }
                return true
            }
            // The request is read: what follows is pipelined, or belongs to another protocol.
            if parsingStopped { return false }
        }
        // Nor is the next request read while the client leaves its answers untaken.
        if !clientIsWritable { return false }
        let queued = queuedBytes
        if queued >= Self.maxQueuedBytes {
            // Between requests what is queued is one head still arriving (complete ones
            // are served at once): it may grow past `limits.max_header_bytes`, where the
            // parser looks again and refuses it. (Before 2026-12-03 reads stopped at
            // 64 KiB here too, so with `max_header_bytes` above it a head of 150 KB never
            // completed: 408 at `client_header`.)
            guard case .idle = state, queued <= headRecheckBytes else { return false }
            return true
        }
        return queued == 0 || pipelinedHeads(limit: settings.maxPipelined) < settings.maxPipelined
    }

    /// Complete request heads among the pipelined bytes, counted up to `limit`
    /// (`limits.max_pipelined`): each ends at a blank line. A body holding one counts
    /// too, which only pauses reads sooner. Scanned only while a client pipelines.
    func pipelinedHeads(limit: Int) -> Int {
        guard let receive else { return 0 }
        return receive.withUnsafeReadableBytes { bytes in
            var count = 0
            var from = 0
            while count < limit, let end = ResponseHeadParser.headEnd(in: UnsafeRawBufferPointer(rebasing: bytes[from...])) {
                count += 1
                from += end
            }
            return count
        }
    }
}
