import NIOCore
import NIOPosix

/// Out of descriptors (EMFILE, ENFILE) or kernel buffers at accept: the listener stops
/// watching for connections for `pause`, then resumes by itself (nginx disables accept
/// events for 500 ms). Connections wait in the backlog meanwhile.
///
/// On every listener of the process — the data listener, the admin listener and the
/// embedded demo upstreams': they share the event loops, so one listener spinning on
/// EMFILE stalls every connection of its loop. Found with the embedded demo under
/// `prlimit --nofile=200`: the demo's listener at 107 % CPU with 29 connections in its
/// queue, and the gateway on the same loop answering nothing until the clients left.
/// (Not, as first thought, the cause of the k6 stress test's multi-second p99 at the
/// descriptor limit: that was the embedded demo unable to accept at all —
/// docs/LOADTEST.md.)
///
/// Also held by an in-place upgrade (``Hold``) while the new process starts on the same
/// socket: one process accepts at a time (both would wake for each connection, and
/// NIO's debug builds stop on the accept that finds none left).
///
/// Written here instead of using NIO's `AcceptBackoffHandler`: that one delays the next
/// `read()`, but after a failed `accept` NIO keeps the listening socket registered for
/// readability, and with a connection waiting in the backlog the level-triggered epoll
/// wakes the loop again at once — measured: 100 % of a core for as long as the
/// descriptors stayed exhausted (`prlimit --nofile=128`, 300 connections). Turning
/// `autoRead` off unregisters the socket, which is what stops the spin.
public final class AcceptPauseHandler: ChannelInboundHandler {
    public typealias InboundIn = Any
    private let pause: TimeAmount
    /// Accepting is paused now (for tests: EmbeddedChannel ignores `autoRead`).
    public private(set) var paused = false
    /// Held by an upgrade: stays off until released, whatever the pause does.
    public private(set) var held = false

    /// A user event: hold (true) or release (false) accepting.
    public struct Hold: Sendable {
        public var held: Bool
        public init(held: Bool) { self.held = held }
    }

    public init(pause: TimeAmount = .milliseconds(250)) {
        self.pause = pause
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let io = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(io.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        guard !paused, let options = context.channel.syncOptions else { return }
        paused = true
        try? options.setOption(.autoRead, value: false)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: pause) {
            let (handler, context) = loopBound.value
            handler.paused = false
            if !handler.held { try? context.channel.syncOptions?.setOption(.autoRead, value: true) }
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let hold = event as? Hold else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        held = hold.held
        if held || !paused { try? context.channel.syncOptions?.setOption(.autoRead, value: !held) }
    }
}

@available(*, unavailable)
extension AcceptPauseHandler: Sendable {}

extension ServerBootstrap {
    /// The listener pauses accepting for `pause` when descriptors run out
    /// (``AcceptPauseHandler``), and can be held by an upgrade.
    public func pausingAcceptsWhenOutOfDescriptors(for pause: TimeAmount = .milliseconds(250)) -> ServerBootstrap {
        serverChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(pause: pause)) }
        }
    }
}
