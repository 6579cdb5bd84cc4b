import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Raw bytes in, everything the server wrote until it closed out, plus any error
/// seen on the socket (a reset would show here).
public enum RawClient {
    public struct Outcome: Sendable {
        public var text: String
        public var error: String?
    }

    public static func exchange(_ request: String, with address: SocketAddress, group: any EventLoopGroup, closeWriteAfterSend: Bool = false)
        async throws -> Outcome
    {
        let sink = Sink()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(SinkHandler(sink: sink)) }
            }
            .connect(to: address).get()
        // A server that answers and closes at accept (a connection cap) may be gone
        // before the request is written: what it said is still in the outcome.
        try? await channel.writeAndFlush(ByteBuffer(string: request))
        if closeWriteAfterSend { try? await channel.close(mode: .output) }
        try await channel.closeFuture.get()
        return sink.outcome
    }

    /// Sends `request` and returns the connection for further steps.
    public static func open(with address: SocketAddress, group: any EventLoopGroup) async throws -> (any Channel, Sink) {
        let sink = Sink()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(SinkHandler(sink: sink)) }
            }
            .connect(to: address).get()
        return (channel, sink)
    }

    public final class Sink: Sendable {
        public init() {}
        private let box = NIOLockedValueBox(Outcome(text: "", error: nil))
        private let waiters = NIOLockedValueBox<[(String, EventLoopPromise<Void>)]>([])
        /// The connection closed: nothing more will arrive.
        private let ended = NIOLockedValueBox(false)
        public var outcome: Outcome { box.withLockedValue { $0 } }

        public struct EndedWithout: Error, CustomStringConvertible {
            public let text: String
            public let received: String
            public var description: String { "the connection closed before \"\(text)\" arrived; received: \(received)" }
        }

        func append(_ text: String) {
            let all = box.withLockedValue { $0.text += text; return $0.text }
            let ready = waiters.withLockedValue { waiters in
                let ready = waiters.filter { all.contains($0.0) }
                waiters.removeAll { all.contains($0.0) }
                return ready
            }
            ready.forEach { $0.1.succeed() }
        }

        /// Completes when the received text contains `text`; throws ``EndedWithout`` if
        /// the connection closes first (a wrong answer fails the test, not hangs it).
        public func waitFor(_ text: String, on eventLoop: any EventLoop) async throws {
            let promise = eventLoop.makePromise(of: Void.self)
            waiters.withLockedValue { $0.append((text, promise)) }
            // Arrived (or ended) before the waiter was listed: complete it here, unless
            // append() or end() took it from the list and completes it.
            let arrived = outcome.text.contains(text)
            if arrived || ended.withLockedValue({ $0 }) {
                let mine = waiters.withLockedValue { waiters in
                    guard let index = waiters.firstIndex(where: { $0.1.futureResult === promise.futureResult }) else { return false }
                    waiters.remove(at: index)
                    return true
                }
                if mine && arrived {
                    promise.succeed()
                } else if mine {
                    promise.fail(EndedWithout(text: text, received: outcome.text))
                }
            }
            try await promise.futureResult.get()
        }

        /// The connection closed: every waiter still waiting fails.
        func end() {
            ended.withLockedValue { $0 = true }
            let left = waiters.withLockedValue { waiters in
                defer { waiters.removeAll() }
                return waiters
            }
            let received = outcome.text
            for (text, promise) in left { promise.fail(EndedWithout(text: text, received: received)) }
        }

        func fail(_ error: any Error) { box.withLockedValue { $0.error = "\(error)" } }
    }

    public final class SinkHandler: ChannelInboundHandler {
        public typealias InboundIn = ByteBuffer
        let sink: Sink
        public init(sink: Sink) { self.sink = sink }
        public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            sink.append(String(buffer: unwrapInboundIn(data)))
        }
        public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            // The server closed its side: everything it will say has arrived.
            if case .inputClosed = event as? ChannelEvent { context.close(promise: nil) }
            context.fireUserInboundEventTriggered(event)
        }

        public func errorCaught(context: ChannelHandlerContext, error: any Error) {
            sink.fail(error)
            context.close(promise: nil)
        }

        public func channelInactive(context: ChannelHandlerContext) {
            sink.end()
            context.fireChannelInactive()
        }
    }
}
