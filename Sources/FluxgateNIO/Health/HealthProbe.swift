import FluxgateCore
import NIOCore
import NIOPosix
import NIOTLS

/// One active health check: a fresh connection (never the data path's pool, never
/// admission), `GET <path>` with `Connection: close`, and the status line of the
/// answer. A status in `healthy` (`health_check.expected_statuses`, 200-399 unless
/// configured) is healthy; any other status, a timeout (connect included), a refused
/// or reset connection, or a head our strict ``ResponseHeadParser`` refuses is a
/// failure with that reason.
enum HealthProbe {
    /// Completes with nil when healthy, else the failure; the future never fails.
    static func run(
        target: SocketAddress, tls: UpstreamTLSTarget? = nil, request: ByteBuffer, healthy: HealthyStatuses = .standard,
        timeout: TimeAmount, on loop: any EventLoop
    ) -> EventLoopFuture<UpstreamHealth.Failure?> {
        guard loop.inEventLoop else {
            return loop.flatSubmit { run(target: target, tls: tls, request: request, healthy: healthy, timeout: timeout, on: loop) }
        }
        let outcome = Outcome(promise: loop.makePromise())
        let bound = NIOLoopBound(outcome, eventLoop: loop)
        let timer = loop.scheduleTask(in: timeout) { bound.value.finish(.timeout) }
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(tls.makeHandler()) }
                    try channel.pipeline.syncOperations.addHandler(ProbeHandler(outcome: bound.value, healthy: healthy, tls: tls != nil))
                }
            }
            .connect(to: target)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    if bound.value.done {
                        channel.close(promise: nil)
                    } else {
                        channel.writeAndFlush(request, promise: nil)
                        bound.value.channel = channel
                    }
                case .failure(let error) where Self.isLocalExhaustion(error):
                    // Says nothing about the upstream: the round's result for it is "unknown".
                    bound.value.abandon(error)
                case .failure(let error):
                    bound.value.finish(Self.failure(connecting: error))
                }
            }
        outcome.promise.futureResult.whenComplete { _ in timer.cancel() }
        return outcome.promise.futureResult
    }

    static func request(path: String, authority: String) -> ByteBuffer {
        ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: \(authority)\r\nUser-Agent: fluxgate-health-check\r\nConnection: close\r\n\r\n")
    }

    /// Whether a connect failed for want of a local resource (descriptors, buffers):
    /// the gateway's problem, not the upstream's, so it must not count against the
    /// upstream's health (seen in the stress test: at the 20 000-descriptor limit every
    /// upstream was ejected for the gateway's own EMFILE; docs/LOADTEST.md).
    static func isLocalExhaustion(_ error: any Error) -> Bool {
        let local: Set<Int32> = [EMFILE, ENFILE, ENOBUFS, ENOMEM]
        if let error = error as? IOError { return local.contains(error.errnoCode) }
        if let error = error as? NIOConnectionError {
            return !error.connectionErrors.isEmpty && error.connectionErrors.allSatisfy { isLocalExhaustion($0.error) }
        }
        return false
    }

    static func failure(connecting error: any Error) -> UpstreamHealth.Failure {
        if case .connectTimeout = error as? ChannelError { return .timeout }
        let refused = { (error: any Error) in (error as? IOError)?.errnoCode == ECONNREFUSED }
        if refused(error) { return .refused }
        if let error = error as? NIOConnectionError, error.connectionErrors.contains(where: { refused($0.error) }) { return .refused }
        return .other("connect failed: \(error)")
    }

    /// The probe's result, completed once by whichever comes first: the answer, the
    /// connection's end, or the timer. Closes the probe's connection when done.
    private final class Outcome {
        let promise: EventLoopPromise<UpstreamHealth.Failure?>
        var channel: (any Channel)?
        private(set) var done = false

        init(promise: EventLoopPromise<UpstreamHealth.Failure?>) { self.promise = promise }

        func finish(_ result: UpstreamHealth.Failure?) {
            guard !done else { return }
            done = true
            channel?.close(promise: nil)
            channel = nil
            promise.succeed(result)
        }

        /// No verdict: the probe could not be made (the gateway's own resources).
        func abandon(_ error: any Error) {
            guard !done else { return }
            done = true
            promise.fail(error)
        }
    }

    /// Reads until the response head is complete, then judges it.
    private final class ProbeHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let outcome: Outcome
        private let healthy: HealthyStatuses
        private var received = ByteBuffer()
        /// An `https://` upstream whose TLS handshake has not ended yet: an error or a
        /// close now is the handshake's, and the failure says so (an untrusted
        /// certificate was reported as "connection reset" until 2026-12-05).
        private var handshaking: Bool

        init(outcome: Outcome, healthy: HealthyStatuses, tls: Bool) {
            self.outcome = outcome
            self.healthy = healthy
            self.handshaking = tls
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted = event as? TLSUserEvent { handshaking = false }
            context.fireUserInboundEventTriggered(event)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            received.writeBuffer(&buffer)
            while !outcome.done {
                switch received.withUnsafeReadableBytes({ ResponseHeadParser.parse($0, maxLength: 65_536) }) {
                case .incomplete:
                    return
                case .invalid:
                    outcome.finish(.malformed)
                case .complete(let head) where head.isInformational:
                    received.moveReaderIndex(forwardBy: head.length)  // 100/103: the final answer follows
                case .complete(let head):
                    outcome.finish(healthy.contains(head.status) ? nil : .status(head.status))
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            outcome.finish(handshaking ? .other(UpstreamHandshake.Failed(cause: nil).description) : .reset)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            outcome.finish(handshaking ? .other(UpstreamHandshake.Failed(cause: error).description) : .reset)
            context.close(promise: nil)
        }
    }
}
