import FluxgateCore
import FluxgateNIOSupport
import NIOCore

/// Enforces a client header timeout, an idle timeout and a send timeout as a pipeline
/// stage: the admin listener's (``AdminServer/Limits``). The gateway's
/// client connections do the same inside ``ProxyHandler``, with no pipeline hop per
/// read or write. The decisions are ``ClientConnectionTimeouts``'s; this shell owns one
/// timer and re-arms it lazily: a timer that fires before the current deadline is
/// re-armed for it, so a busy keep-alive connection costs about one timer per timeout
/// period, not one per request, and never a cancellation. The timer is an entry in a
/// ``LoopTimers``.
final class ClientTimeoutHandler: ChannelDuplexHandler, LoopTimerOwner {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: ClientConnectionTimeouts
    /// The 408 for a head that did not arrive in time, built when it is written (it is dated).
    private let rejection: () -> ByteBuffer
    /// The longest the timer sleeps: the shorter of the two timeouts.
    private let stride: TimeAmount

    /// The shared timers, and this handler's place in them once it armed one.
    private let timers: LoopTimers
    private var timer = LoopTimer()

    /// - Parameter sendTimeout: how long the client may take none of the answers written
    ///   to it, whether or not a request is being answered; zero: not timed.
    init(headerTimeout: Duration, idleTimeout: Duration, sendTimeout: Duration, rejection: @escaping () -> ByteBuffer, timers: LoopTimers) {
        self.timers = timers
        self.machine = ClientConnectionTimeouts(
            headerTimeout: headerTimeout, idleTimeout: idleTimeout, sendTimeout: sendTimeout, sendTimedWhileBusy: true)
        self.rejection = rejection
        self.stride = .nanoseconds(machine.shorterTimeout.nanosecondsClamped)
    }

    /// The loop's clock, so `EmbeddedEventLoop.advanceTime` drives it in tests.
    private static func now(_ context: ChannelHandlerContext) -> MonotonicTime {
        MonotonicTime(context.eventLoop.now)
    }

    /// Held only between `handlerAdded` and `handlerRemoved` (the context owns this
    /// handler; holding it longer is a retain cycle, docs/ARCHITECTURE.md "Who owns whom").
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { run(machine.connectionOpened(now: Self.now(context)), context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if machine.phase == .closed { run(machine.connectionOpened(now: Self.now(context)), context: context) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if machine.phase == .idle { run(machine.bytesReceived(now: Self.now(context)), context: context) }
        context.fireChannelRead(data)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        run(machine.clientWritable(context.channel.isWritable, now: Self.now(context)), context: context)
        context.fireChannelWritabilityChanged()
    }

    /// The request is read as far as the header timeout goes (told by a handler behind
    /// this one): the admin listener tells it at the request's end, so the timeout covers
    /// any body too.
    func requestHeadReceived() {
        guard let own = self.context else { return }
        run(machine.requestHeadReceived(), context: own)
    }

    /// The response to the current request was written and the connection stays open.
    func responseCompleted(now: MonotonicTime) {
        guard let own = self.context else { return }
        run(machine.responseCompleted(now: now), context: own, now: now)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    /// The connection ended: the shared timers let go of this handler; its pending
    /// entry is left to expire into nothing. Idempotent.
    private func stop() {
        _ = machine.connectionClosed()
        timer.release(from: timers)
    }

    private func run(_ action: ClientConnectionTimeouts.Action, context: ChannelHandlerContext, now: MonotonicTime? = nil) {
        switch action {
        case .none, .cancelTimer, .park:
            // A stale timer is harmless: the machine ignores fires without a due deadline.
            // (The admin listener never parks: its timeouts have no `parkAfter`.)
            break
        case .schedule(let deadline):
            arm(NIODeadline(deadline), now: now.map(NIODeadline.init) ?? context.eventLoop.now)
        case .closeIdle, .closeStalled:
            context.close(promise: nil)
        case .rejectSlowHead:
            context.writeThenLingeringClose(rejection(), timeout: nil, writeTimeout: .seconds(5))
        }
    }

    private func arm(_ deadline: NIODeadline, now: NIODeadline) {
        // The timer never sleeps longer than the shorter timeout, so a new deadline is
        // never earlier than the pending one and nothing is re-armed per request: an
        // entry for an earlier deadline re-arms when it fires. An idle connection wakes
        // once per `stride` (10 s by default).
        guard machine.phase != .closed else { return }
        timer.arm(deadline, cap: { now + stride }, owner: self, in: timers)
    }

    /// ``LoopTimers`` reached an entry of this handler's; only the current one counts.
    func loopTimerFired(at deadline: NIODeadline) {
        guard let context, timer.fired(at: deadline) else { return }
        run(machine.timerFired(now: Self.now(context)), context: context)
        if let deadline = machine.deadline {
            arm(NIODeadline(deadline), now: context.eventLoop.now)
        }
    }
}

@available(*, unavailable)
extension ClientTimeoutHandler: Sendable {}
