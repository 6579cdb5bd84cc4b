import FluxgateCore
import NIOCore

/// Parking (``ParkingLot``): `timeouts.park_after` passed with the connection idle.
extension ProxyHandler {
    /// Whether nothing of the connection lives in this handler but its socket: no
    /// exchange, no unread or half-parsed input, no close or drain under way. (Whether
    /// the connection may park at all — plain TCP, our parser, a lot on the loop — was
    /// decided when it was set up: otherwise its timeouts never offer it.)
    var parkable: Bool {
        guard case .idle = state else { return false }
        return receive == nil && partialHead == nil && inputRefusal == nil && !clientInputClosed && !draining && !parsingStopped
            && clientTimeouts?.phase == .idle
    }

    /// Parks the connection once everything written to it is on the wire (an empty
    /// write completes after what was queued before it); a connection that cannot be
    /// parked stays as it is, under its idle timeout.
    func offerForParking(until idleDeadline: NIODeadline) {
        guard parkable, let context, let lot = scratch.parking else { return }
        guard canPark else {
            // TLS or `parser: llhttp`: the connection stays in its channel, but is listed
            // so that at `limits.max_connections` it makes room like a parked one.
            if idleListing == nil { idleListing = lot.listIdle(self, since: now) }
            return
        }
        let promise = eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(allocator.buffer(capacity: 0)), promise: promise)
        // On this loop: the write completes here (an isolated view, no Sendable hop).
        promise.futureResult.assumeIsolated().whenSuccess { [self] _ in
            guard parkable, let context = self.context, let lot = scratch.parking,
                lot.park(context.channel, address: clientAddress, limits: connectionLimits, reuse: reuse, idleDeadline: idleDeadline)
            else { return }
            // The parked socket holds the connection count now; the channel's close
            // closes only NIO's descriptor (the lot's duplicate keeps the socket open).
            connectionLimits = nil
            connectionGone()
            context.close(promise: nil)
        }
    }
}

extension ProxyHandler {
    /// Off the loop's idle list (``ParkingLot/listIdle(_:since:)``): the connection read again or closes.
    func unlistIdle() {
        guard let id = idleListing.take() else { return }
        scratch.parking?.unlistIdle(id)
    }

    /// Closed at `limits.max_connections` to make room for a new connection, as an idle
    /// one is closed: its place is given back at once, so the new one fits now.
    func evictIdle() {
        idleListing = nil
        connectionGone()
        context?.close(promise: nil)
    }
}
