import FluxgateCore
import NIOCore

/// Enforces `timeouts.client_header` and `timeouts.idle` on a client connection.
///
/// In the gateway it is not a pipeline stage: ``ProxyHandler``, the connection's one
/// handler, calls it when the connection opens, when bytes arrive (the start of a
/// request head), when a head was complete and when a response finished — no
/// pipeline hop per read or write. It can still sit in a pipeline on its own (its
/// tests do). The decisions are ``ClientConnectionTimeouts``'s; this shell owns one
/// timer and re-arms it lazily: a timer that fires before the current deadline is
/// re-armed for it, so a busy keep-alive connection costs about one timer per timeout
/// period, not one per request, and never a cancellation. The timer is an entry in the
/// event loop's shared ``LoopTimers`` (with a NIO timer per connection an idle
/// connection cost 4.48 KiB, with the entry 4.20 KiB, bench/compare.sh).
final class ClientTimeoutHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: ClientConnectionTimeouts
    private var timerDeadline: NIODeadline?
    private let rejection: ByteBuffer
    /// The longest the timer sleeps: the shorter of the two timeouts.
    private let stride: TimeAmount

    private let live: LiveObjects

    /// This event loop's metrics (a 408 is counted there).
    private let stats: LoopStats?

    /// Set when ``ProxyHandler`` drives this object itself (the gateway): the lingering
    /// close after a 408 puts its handler in then.
    private let lingerTimeout: TimeAmount?

    /// The event loop's shared timers.
    private let timers: LoopTimers

    init(
        headerTimeout: Duration, idleTimeout: Duration, rejection: ByteBuffer, live: LiveObjects = LiveObjects(), stats: LoopStats? = nil,
        lingerTimeout: TimeAmount? = nil, timers: LoopTimers
    ) {
        self.timers = timers
        self.lingerTimeout = lingerTimeout
        self.stats = stats
        self.live = live
        live.timeoutHandlers.born()
        self.machine = ClientConnectionTimeouts(headerTimeout: headerTimeout, idleTimeout: idleTimeout)
        self.rejection = rejection
        self.stride = .nanoseconds(min(headerTimeout, idleTimeout).nanosecondsClamped)
    }

    deinit { live.timeoutHandlers.died() }

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

    // MARK: Driven without a pipeline hop

    /// The gateway's client connections have one handler, ``ProxyHandler``, which
    /// calls these instead of this object sitting in the pipeline (every read and
    /// write would pass through it): `context` is the proxy handler's, used for the
    /// event loop, the 408 and the close.
    func drive(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive, machine.phase == .closed { run(machine.connectionOpened(now: Self.now(context)), context: context) }
    }

    /// The connection became active (when ``drive(context:)`` came before that).
    func connectionActive() {
        guard let context, machine.phase == .closed else { return }
        run(machine.connectionOpened(now: Self.now(context)), context: context)
    }

    /// Client bytes arrived (at `now`, the driving handler's reading of the loop's clock).
    func bytesArrived(now: MonotonicTime) {
        guard let context, machine.phase == .idle else { return }
        run(machine.bytesReceived(now: now), context: context, now: now)
    }

    /// The connection ended, or the proxy handler left.
    func stopDriving() {
        stop()
        context = nil
    }

    /// A complete request head was decoded. `context` may be any handler's context
    /// in this pipeline; only its event loop and channel are used.
    func requestHeadReceived(context: ChannelHandlerContext) {
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

    /// The connection ended: its pending entry (which holds this handler only weakly)
    /// is left to expire and counted as abandoned. Idempotent.
    private func stop() {
        _ = machine.connectionClosed()
        if timerDeadline != nil {
            timerDeadline = nil
            timers.abandon()
        }
    }

    private func run(_ action: ClientConnectionTimeouts.Action, context: ChannelHandlerContext, now: MonotonicTime? = nil) {
        switch action {
        case .none, .cancelTimer:
            // A stale timer is harmless: the machine ignores fires without a due deadline.
            break
        case .schedule(let deadline):
            arm(NIODeadline(deadline), now: now.map(NIODeadline.init) ?? context.eventLoop.now)
        case .closeIdle:
            context.close(promise: nil)
        case .rejectSlowHead:
            stats?.traffic.refused(.headerTimeout)
            // A lingering close: the slow client may still be sending its head. The 408
            // may never be written (a TLS handshake that never finished): the close
            // comes at the linger timeout all the same.
            context.writeThenLingeringClose(rejection, timeout: lingerTimeout, writeTimeout: max(lingerTimeout ?? .zero, .seconds(5)))
        }
    }

    private func arm(_ deadline: NIODeadline, now: NIODeadline) {
        // The timer never sleeps longer than the shorter timeout, so a new deadline is
        // never earlier than the pending one and nothing is re-armed per request: an
        // entry for an earlier deadline re-arms when it fires. An idle connection wakes
        // once per `stride` (10 s by default).
        let target = min(deadline, now + stride)
        if let timerDeadline, timerDeadline <= target { return }
        timerDeadline = target
        timers.schedule(self, at: target)
    }

    /// Whether an entry for `deadline` is this handler's current one (``LoopTimers``).
    func isWaiting(for deadline: NIODeadline) -> Bool { deadline == timerDeadline }

    /// ``LoopTimers`` reached this handler's current entry (it passes over stale ones,
    /// ``isWaiting(for:)``).
    func loopTimerFired() {
        guard let context else { return }
        timerDeadline = nil
        run(machine.timerFired(now: Self.now(context)), context: context)
        if let deadline = machine.deadline {
            arm(NIODeadline(deadline), now: context.eventLoop.now)
        }
    }
}

@available(*, unavailable)
extension ClientTimeoutHandler: Sendable {}
