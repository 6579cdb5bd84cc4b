import FluxgateCore
import NIOCore
import NIOHTTP1

/// The client side of the data path: one per client connection, at the tail of the
/// server pipeline (after NIOHTTP1's decoder, encoder and pipelining handler).
///
/// For each request it picks an upstream, borrows a keep-alive connection from its
/// event loop's ``UpstreamPool`` and streams parts both ways. Backpressure: client
/// reads are held back while the upstream connection is not writable (or not yet
/// connected), and the upstream connection holds its reads while this channel is not
/// writable. Every failure becomes an answer (502/504/413 …) unless the response
/// had already started, when the only honest signal left is closing the connection.
final class ProxyHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case active(Exchange)
        /// A final answer went out and the connection closes once it is written;
        /// anything still arriving is discarded.
        case closing
    }

    private let runtime: GatewayRuntime
    private let pool: UpstreamPool
    private let maxBodyBytes: Int
    private let upstreamHeaderTimeout: TimeAmount
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var clientAddress = "unknown"
    private var readPending = false
    private var upstreamNeedsFlush = false
    private var isHeadRequest = false

    init(runtime: GatewayRuntime, pool: UpstreamPool) {
        self.runtime = runtime
        self.pool = pool
        self.maxBodyBytes = runtime.config.limits.maxBodyBytes
        self.upstreamHeaderTimeout = .nanoseconds(runtime.config.timeouts.upstreamHeader.nanosecondsClamped)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let ip = context.channel.remoteAddress?.ipAddress { clientAddress = ip }
    }

    func channelActive(context: ChannelHandlerContext) {
        if let ip = context.channel.remoteAddress?.ipAddress { clientAddress = ip }
        context.fireChannelActive()
    }

    // MARK: Client → upstream

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestHead(head, context: context)
        case .body(let buffer):
            requestBody(buffer, context: context)
        case .end(let trailers):
            requestEnd(trailers)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if upstreamNeedsFlush, case .active(let exchange) = state {
            upstreamNeedsFlush = false
            exchange.connection?.flush()
        }
        context.fireChannelReadComplete()
    }

    private func requestHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard case .idle = state else { return }  // .closing: discard
        context.triggerUserOutboundEvent(ClientConnectionEvent.requestHeadReceived, promise: nil)
        let (facts, policy) = HeaderRewriter.inspect(head.headers)
        let requestID = facts.requestID ?? pool.nextRequestID()
        isHeadRequest = head.method == .HEAD
        if let length = facts.contentLength, length > maxBodyBytes {
            answer(.bodyTooLarge, requestID: requestID, version: head.version, close: true)
            return
        }
        guard let upstream = runtime.pickUpstream() else {
            answer(.noUpstream, requestID: requestID, version: head.version, close: !head.isKeepAlive, requestComplete: false)
            return
        }
        let upstreamHead = HeaderRewriter.upstreamRequestHead(
            head, policy: policy, facts: facts, requestID: requestID, clientAddress: clientAddress,
            upstreamAuthority: runtime.upstreams[upstream].url.endpoint.description)
        let exchange = Exchange(
            upstreamHead: upstreamHead, clientVersion: head.version, requestID: requestID,
            clientKeepAlive: head.isKeepAlive && !policy.requestsClose, upstream: upstream)
        state = .active(exchange)
        if facts.expectsContinue && head.version == .http1_1 {
            // RFC 9110 §10.1.1: the body limit was checked above, so the client may send.
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        startUpstream(exchange)
    }

    private func requestBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard case .active(let exchange) = state else { return }
        exchange.bodyBytes += buffer.readableBytes
        if exchange.bodyBytes > maxBodyBytes {
            abortUpstream(exchange)
            if exchange.responseHeadSent {
                closeClient()
            } else {
                answer(.bodyTooLarge, requestID: exchange.requestID, version: exchange.clientVersion, close: true)
            }
            return
        }
        if let connection = exchange.connection {
            exchange.bodyForwarded = true
            connection.write(.body(.byteBuffer(buffer)))
            upstreamNeedsFlush = true
        } else {
            exchange.buffered.append(.body(.byteBuffer(buffer)))
        }
    }

    private func requestEnd(_ trailers: HTTPHeaders?) {
        guard case .active(let exchange) = state else { return }
        exchange.requestComplete = true
        if let connection = exchange.connection {
            connection.write(.end(trailers))
            connection.flush()
            upstreamNeedsFlush = false
            armHeaderTimer(exchange)
        } else {
            exchange.buffered.append(.end(trailers))
        }
    }

    // MARK: Upstream connection

    private func startUpstream(_ exchange: Exchange) {
        if let connection = pool.takeIdle(exchange.upstream) {
            attach(connection, to: exchange)
            return
        }
        exchange.connecting = true
        pool.connect(exchange.upstream) { [self] result in
            connectCompleted(exchange, result)
        }
    }

    private func connectCompleted(_ exchange: Exchange, _ result: Result<UpstreamConnection, any Error>) {
        exchange.connecting = false
        guard case .active(let current) = state, current === exchange else {
            // The client went away meanwhile: keep the fresh connection for the next one.
            if case .success(let connection) = result { pool.release(connection) }
            return
        }
        switch result {
        case .success(let connection):
            attach(connection, to: exchange)
        case .failure(let error):
            exchange.lastConnectError = error
            exchange.tried.append(exchange.upstream)
            if let next = runtime.balancer.failover(after: exchange.upstream, tried: Set(exchange.tried)) {
                exchange.upstream = next
                startUpstream(exchange)
            } else {
                answerForExchange(exchange, Self.isConnectTimeout(error) ? .upstreamTimeout : .upstreamUnavailable)
            }
        }
    }

    static func isConnectTimeout(_ error: any Error) -> Bool {
        if case .connectTimeout = error as? ChannelError { return true }
        return false
    }

    private func attach(_ connection: UpstreamConnection, to exchange: Exchange) {
        exchange.connection = connection
        connection.delegate = self
        connection.write(.head(exchange.upstreamHead))
        for part in exchange.buffered {
            if case .body = part { exchange.bodyForwarded = true }
            connection.write(part)
        }
        exchange.buffered.removeAll()
        connection.flush()
        if exchange.requestComplete { armHeaderTimer(exchange) }
        if readPending && connection.isWritable {
            readPending = false
            context?.read()
        }
    }

    private func armHeaderTimer(_ exchange: Exchange) {
        guard !exchange.responseHeadSent, exchange.headerTimer == nil, let context else { return }
        exchange.headerTimer = context.eventLoop.scheduleTask(in: upstreamHeaderTimeout) { [weak self, weak exchange] in
            guard let self, let exchange else { return }
            self.upstreamHeaderTimedOut(exchange)
        }
    }

    private func upstreamHeaderTimedOut(_ exchange: Exchange) {
        guard case .active(let current) = state, current === exchange, !exchange.responseHeadSent else { return }
        exchange.headerTimer = nil
        abortUpstream(exchange)
        answerForExchange(exchange, .upstreamTimeout)
    }

    /// Closes the exchange's upstream connection without reusing it.
    private func abortUpstream(_ exchange: Exchange) {
        exchange.headerTimer?.cancel()
        exchange.headerTimer = nil
        if let connection = exchange.connection {
            exchange.connection = nil
            connection.close()
        }
    }

    // MARK: Answers and completion

    /// Answers an active exchange with the gateway's own response.
    private func answerForExchange(_ exchange: Exchange, _ kind: GatewayAnswer) {
        answer(
            kind, requestID: exchange.requestID, version: exchange.clientVersion,
            close: !exchange.clientKeepAlive || !exchange.requestComplete, requestComplete: exchange.requestComplete)
    }

    private func answer(
        _ kind: GatewayAnswer, requestID: String, version: HTTPVersion, close: Bool, requestComplete: Bool = false
    ) {
        guard let context else { return }
        let closing = close
        context.write(wrapOutboundOut(.head(runtime.responses.head(kind, requestID: requestID, close: closing, version: version))), promise: nil)
        if !isHeadRequest {
            context.write(wrapOutboundOut(.body(.byteBuffer(runtime.responses.body(kind)))), promise: nil)
        }
        finishResponse(keepAlive: !closing)
    }

    private func finishResponse(keepAlive: Bool) {
        guard let context else { return }
        if case .active(let exchange) = state {
            exchange.headerTimer?.cancel()
            exchange.headerTimer = nil
        }
        if keepAlive {
            state = .idle
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            context.triggerUserOutboundEvent(ClientConnectionEvent.responseCompleted, promise: nil)
            if readPending {
                readPending = false
                context.read()
            }
        } else {
            state = .closing
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
            promise.futureResult.whenComplete { _ in context.close(promise: nil) }
        }
    }

    private func closeClient() {
        state = .closing
        context?.close(promise: nil)
    }

    // MARK: Channel events

    func read(context: ChannelHandlerContext) {
        if case .active(let exchange) = state, !exchange.requestComplete {
            guard let connection = exchange.connection, connection.isWritable else {
                readPending = true
                return
            }
        }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .active(let exchange) = state {
            exchange.connection?.resumeReads()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .active(let exchange) = state {
            // A client that leaves mid-request frees its upstream connection: closed, never reused.
            abortUpstream(exchange)
        }
        state = .closing
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Parse errors were answered by ProtocolErrorHandler; the decoder closes the channel.
        if case .active(let exchange) = state { abortUpstream(exchange) }
        state = .closing
        context.close(promise: nil)
    }
}

// MARK: - Upstream events

extension ProxyHandler: UpstreamConnectionDelegate {
    var clientIsWritable: Bool { context?.channel.isWritable ?? false }

    func upstreamResponsePart(_ part: HTTPClientResponsePart) {
        guard case .active(let exchange) = state, let context else { return }
        switch part {
        case .head(let head):
            exchange.headerTimer?.cancel()
            exchange.headerTimer = nil
            exchange.responseHeadSent = true
            exchange.upstreamKeepAlive = head.isKeepAlive
            let (clientHead, keepAlive) = HeaderRewriter.clientResponseHead(head, exchange: exchange, isHeadRequest: isHeadRequest)
            exchange.clientKeepAlive = keepAlive
            context.write(wrapOutboundOut(.head(clientHead)), promise: nil)
        case .body(let buffer):
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end:
            if let connection = exchange.connection {
                exchange.connection = nil
                if exchange.requestComplete && exchange.upstreamKeepAlive {
                    pool.release(connection)
                } else {
                    connection.close()
                }
            }
            finishResponse(keepAlive: exchange.clientKeepAlive)
        }
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable && readPending, let context {
            readPending = false
            context.read()
        }
    }

    func upstreamFailed(_ error: any Error) {
        guard case .active(let exchange) = state else { return }
        let connection = exchange.connection
        exchange.connection = nil
        exchange.headerTimer?.cancel()
        exchange.headerTimer = nil
        if exchange.responseHeadSent {
            closeClient()
            return
        }
        // A reused keep-alive connection that the upstream closed just as it was picked:
        // nothing was answered and (without a body) nothing is lost by sending again.
        if let connection, connection.servedRequests > 0, !exchange.bodyForwarded, !exchange.retriedStaleConnection,
            exchange.isIdempotent, error as? UpstreamError == .closedBeforeResponseEnd
        {
            exchange.retriedStaleConnection = true
            if exchange.requestComplete { exchange.buffered.append(.end(nil)) }
            exchange.connecting = true
            pool.connect(exchange.upstream) { [self] result in connectCompleted(exchange, result) }
            return
        }
        answerForExchange(exchange, .upstreamError)
    }
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}
