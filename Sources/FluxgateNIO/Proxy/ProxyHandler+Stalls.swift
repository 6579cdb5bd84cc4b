import FluxgateCore
import NIOCore

/// The memory a connection holds while it does not keep up, in the loop's
/// ``StalledClientBudget`` (`limits.stalled_client_bytes`).
extension ProxyHandler {
    /// What this connection holds for its client now: the receive buffer while reads
    /// are paused with input in it (pipelined requests behind an answer, a body its
    /// upstream does not take) or while a head arrives in parts; a body read into
    /// memory before admission (`limits.request_buffer_bytes`) while the rest of it is
    /// awaited; and the bytes written that the client has not taken while they are past
    /// NIO's high watermark. 0 while it keeps up — between requests, and while a
    /// request is proxied at the pace of both sides.
    var heldForClient: Int {
        guard context != nil else { return 0 }
        var bytes = 0
        switch state {
        case .closing, .tunnelled: return 0
        case .idle: break
        case .active(let exchange):
            if exchange.buffering {
                for piece in exchange.pending { bytes += piece.readableBytes }
            }
        }
        if let receive, readPending || partialHead != nil { bytes += receive.capacity }
        if !clientWritable, let context {
            // The socket's queue; a TLS connection's is ciphertext (the plaintext in
            // swift-nio-ssl's buffers is not counted).
            bytes += (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        }
        return bytes
    }

    /// Tells the loop's budget what this connection holds now (at the moments a stall
    /// starts, changes or ends: input handled, reads paused or resumed, writability
    /// changed, the connection gone), and closes the connections it names — after this
    /// event, on the loop, so none is closed inside its own read or write. The common
    /// case — nothing held, no entry — returns after reading a few fields.
    func accountStall() {
        let bytes = heldForClient
        guard bytes > 0 || stall != nil else { return }
        let before = scratch.stalledClients.total
        let closing = scratch.stalledClients.hold(
            &stall, self, bytes: bytes, limit: scratch.loopShare(of: settings.config.limits.stalledClientBytes))
        runtime.live.stalledClientBytes.wrappingAdd(scratch.stalledClients.total - before, ordering: .relaxed)
        for handler in closing {
            handler.stall = nil
            let bound = NIOLoopBound(handler, eventLoop: eventLoop)
            eventLoop.execute { bound.value.closeStalledForMemory() }
        }
    }

    /// The loop's budget chose this connection: it has held memory for its client
    /// longer than any other while the loop's share of `limits.stalled_client_bytes`
    /// is taken. Closed as a timed-out stall is (a response under way is cut off).
    func closeStalledForMemory() {
        guard context != nil else { return }
        switch state {
        case .closing, .tunnelled: return
        case .idle, .active: break
        }
        stats.traffic.stalledClientClosed()
        closeClient(.cutOff)
    }
}
