import HeapModule
import NIOCore

/// One NIO timer per event loop for the client connections' timeouts
/// (``ClientTimeoutHandler``), instead of one per connection.
///
/// Every idle keep-alive connection has a timeout pending. Scheduled with NIO, each
/// costs a slot in the loop's timer heap (216 bytes per connection at 10 000, heaptrack),
/// a task closure and a promise; an idle connection measured 4.48 KiB with them and
/// 4.20 KiB with this (docs/PERFORMANCE.md#memory-per-idle-connection). Here a pending
/// timeout is one heap entry (a deadline and a weak reference, 16 bytes), and the loop
/// runs one NIO task, for the earliest deadline. NIO offers no shared timer of
/// this kind, so it is written here on swift-collections' `Heap`.
///
/// Entries are not removed one by one: a connection that closes leaves its entry to
/// fire and be ignored (the owner checks the deadline; a released owner is gone from
/// the weak reference). That keeps closing O(1) — removing a NIO task is a linear search
/// of NIO's heap. Left alone, those entries (and the weak references' side tables)
/// would pile up to the connection rate × the timeout stride under churn (measured:
/// +66 bytes per closed connection until it levelled off at +6-9 MiB,
/// docs/results/perf-2026-12-01/churn-before-compaction.txt); so once the abandoned entries are more than
/// half of the heap, it is rebuilt without them (O(n), so O(1) per closed
/// connection), and they stay below the live connections plus 1 024.
/// Loop-confined, like the handlers that use it.
final class LoopTimers {
    private struct Entry: Comparable {
        var deadline: NIODeadline
        weak var owner: ClientTimeoutHandler?

        static func < (lhs: Entry, rhs: Entry) -> Bool { lhs.deadline < rhs.deadline }
        static func == (lhs: Entry, rhs: Entry) -> Bool { lhs.deadline == rhs.deadline }
    }

    let eventLoop: any EventLoop
    private var heap = Heap<Entry>()
    private var task: Scheduled<Void>?
    private var taskDeadline: NIODeadline?
    /// Entries whose owner closed since the last rebuild.
    private var abandoned = 0

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Entries pending, stale ones included (for tests).
    var pending: Int { heap.count }

    /// Calls `owner.loopTimerFired()` at `deadline`, unless the owner is gone or the
    /// entry is no longer its current one.
    func schedule(_ owner: ClientTimeoutHandler, at deadline: NIODeadline) {
        eventLoop.assertInEventLoop()
        heap.insert(Entry(deadline: deadline, owner: owner))
        if let taskDeadline, taskDeadline <= deadline { return }
        arm(deadline)
    }

    /// An owner with an entry pending closed: its entry is now only waste.
    func abandon() {
        abandoned += 1
        guard abandoned > 1_024, abandoned * 2 > heap.count else { return }
        heap = Heap(heap.unordered.filter { entry in entry.owner?.isWaiting(for: entry.deadline) ?? false })
        abandoned = 0
        // The NIO task stays armed: if the earliest entry went, it fires, finds nothing
        // due and re-arms for the new earliest.
    }

    private func arm(_ deadline: NIODeadline) {
        task?.cancel()
        taskDeadline = deadline
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        task = eventLoop.scheduleTask(deadline: deadline) { bound.value.run() }
    }

    private func run() {
        task = nil
        taskDeadline = nil
        let now = eventLoop.now
        var due: [ClientTimeoutHandler] = []
        while let first = heap.min, first.deadline <= now {
            let entry = heap.removeMin()
            if let owner = entry.owner, owner.isWaiting(for: entry.deadline) {
                due.append(owner)
            } else if abandoned > 0 {
                abandoned -= 1
            }
        }
        if let next = heap.min { arm(next.deadline) }
        // After the heap is settled: an owner re-arms from here.
        for owner in due { owner.loopTimerFired() }
    }
}

@available(*, unavailable)
extension LoopTimers: Sendable {}
