import NIOCore
import NIOTLS

/// The TLS handshake with an `https://` upstream, as part of connecting to it: the
/// pool hands a connection to its request only once the handshake is done, and gives
/// the handshake `timeouts.connect` of its own after the TCP connect, as nginx's
/// `proxy_connect_timeout` bounds its SSL handshake. Until 2026-12-05 the connection
/// was handed over at the TCP connect and the request written into the TLS handler,
/// which held it until the handshake ended — an upstream that accepted and never
/// answered its ClientHello kept the request for `timeouts.upstream_header` (30 s)
/// and answered 504 without trying another upstream (nor a `POST`, which counted as
/// sent), and a handshake that failed (an untrusted certificate) was a 502 that did
/// not fail over either. Now both are connect failures: nothing reached the upstream,
/// so any request goes to the next one, and the upstream's health counts the failure.
///
/// swift-nio-ssl has no handshake deadline of its own and NIO's `connectTimeout`
/// ends at the TCP connect, so this handler sits behind `NIOSSLClientHandler` and
/// reports the handshake's end; the pool runs the timer.
final class UpstreamHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    /// Succeeded at `handshakeCompleted`; failed with the first error or the close.
    let done: EventLoopPromise<Void>
    private var finished = false

    init(done: EventLoopPromise<Void>) { self.done = done }

    /// The handshake failed (`cause`), or the connection closed before it ended
    /// (`cause` nil). Not ending in time is the pool's `ChannelError.connectTimeout`.
    struct Failed: Error, CustomStringConvertible {
        let cause: (any Error)?
        var description: String {
            if let cause { return "TLS handshake with the upstream failed: \(cause)" }
            return "the upstream closed the connection during the TLS handshake"
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            finish(.success(()))
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(Failed(cause: error)))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(Failed(cause: nil)))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(.failure(Failed(cause: nil)))
    }

    /// Completes `done` once, whatever comes later.
    func finish(_ result: Result<Void, any Error>) {
        guard !finished else { return }
        finished = true
        done.completeWith(result)
    }
}
