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
        /// What arrived, who waits for what, and whether the connection closed: one lock,
        /// so a waiter is either completed on arrival or listed before the next append.
        private struct State {
            var outcome = Outcome(text: "", error: nil)
            var waiters: [(String, EventLoopPromise<Void>)] = []
            var ended = false
        }
        private let state = NIOLockedValueBox(State())
        public var outcome: Outcome { state.withLockedValue { $0.outcome } }

        public struct EndedWithout: Error, CustomStringConvertible {
            public let text: String
            public let received: String
            public var description: String { "the connection closed before \"\(text)\" arrived; received: \(received)" }
        }

        func append(_ text: String) {
            let ready = state.withLockedValue { state in
                state.outcome.text += text
                let all = state.outcome.text
                defer { state.waiters.removeAll { all.contains($0.0) } }
                return state.waiters.filter { all.contains($0.0) }
            }
            ready.forEach { $0.1.succeed() }
        }

        /// Completes when the received text contains `text`; throws ``EndedWithout`` if
        /// the connection closes first (a wrong answer fails the test, not hangs it).
        public func waitFor(_ text: String, on eventLoop: any EventLoop) async throws {
            let promise = eventLoop.makePromise(of: Void.self)
            let now: Result<Void, EndedWithout>? = state.withLockedValue { state in
                if state.outcome.text.contains(text) { return .success(()) }
                if state.ended { return .failure(EndedWithout(text: text, received: state.outcome.text)) }
                state.waiters.append((text, promise))
                return nil
            }
            if let now { promise.completeWith(now.mapError { $0 as any Error }) }
            try await promise.futureResult.get()
        }

        /// The connection closed: every waiter still waiting fails.
        func end() {
            let (left, received) = state.withLockedValue { state in
                state.ended = true
                defer { state.waiters.removeAll() }
                return (state.waiters, state.outcome.text)
            }
            for (text, promise) in left { promise.fail(EndedWithout(text: text, received: received)) }
        }

        func fail(_ error: any Error) { state.withLockedValue { $0.outcome.error = "\(error)" } }
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
