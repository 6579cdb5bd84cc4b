import FluxgateCore
import HeapModule
import NIOCore

/// What ``LoopTimers`` calls back: a connection's timer shell (``ProxyHandler`` in the
/// gateway, ``ClientTimeoutHandler`` on the admin listener).
protocol LoopTimerOwner: AnyObject {
    /// An entry of this owner's came due at `deadline`. Owners keep only their latest
    /// entry current and ignore the others.
    func loopTimerFired(at deadline: NIODeadline)
}

/// One NIO timer per event loop for its connections' timeouts, instead of one per
/// connection.
///
/// Every idle keep-alive connection has a timeout pending. Scheduled with NIO, each
/// costs a slot in the loop's timer heap (216 bytes per connection at 10 000, heaptrack),
/// a task closure and a promise; an idle connection measured 4.48 KiB with them and
/// 4.20 KiB with this (docs/PERFORMANCE.md#memory-per-idle-connection). Here a pending
/// timeout is one heap entry (a deadline, a slot and a generation: 16 bytes), and the
/// loop runs one NIO task, for the earliest deadline. NIO offers no shared timer of
/// this kind, so it is written here on swift-collections' `Heap`.
///
/// Owners are held in a ``SlotTable`` while they are registered (an open connection),
/// strongly, and entries name a slot and its generation. Not a weak reference: a
/// weakly referenced object gets a side table (32 bytes) and every retain and release
/// of it takes the Swift runtime's slow path — the connection handler is retained
/// and released dozens of times per request (docs/PERFORMANCE.md, "Reference
/// counting"). A closed connection unregisters, which releases its owner at once and
/// bumps the slot's generation, so its entries fire into nothing; the slot is reused.
///
/// Entries are not removed one by one: a connection that closes leaves its entry to
/// fire and be ignored. That keeps closing O(1) — removing a NIO task is a linear search
/// of NIO's heap. Left alone, those entries would pile up to the connection rate × the
/// timeout stride under churn (measured with the earlier weak references: +66 bytes per
/// closed connection until it levelled off at +6-9 MiB,
/// docs/results/perf-2026-12-01/churn-before-compaction.txt); so once the abandoned
/// entries are more than half of the heap, it is rebuilt without them (O(n), so O(1)
/// per closed connection), and they stay below the live connections plus 1 024.
/// Loop-confined, like the handlers that use it.
final class LoopTimers {
    /// An owner's place in the slot table, from ``register(_:)`` to ``unregister(_:hadPending:)``.
    typealias Registration = SlotID

    private struct Entry: Comparable {
        var deadline: NIODeadline
        var owner: SlotID

        static func < (lhs: Entry, rhs: Entry) -> Bool { lhs.deadline < rhs.deadline }
        static func == (lhs: Entry, rhs: Entry) -> Bool { lhs.deadline == rhs.deadline }
    }

    let eventLoop: any EventLoop
    private var heap = Heap<Entry>()
    private var task: Scheduled<Void>?
    private var taskDeadline: NIODeadline?
    /// Entries whose owner unregistered since the last rebuild.
    private var abandoned = 0
    /// Registered owners: an entry of an owner that unregistered names a slot whose
    /// generation has moved on, and matches nothing.
    private var owners = SlotTable<any LoopTimerOwner>()

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Entries pending, stale ones included (for tests).
    var pending: Int { heap.count }

    /// Owners registered now (for tests).
    var registered: Int { owners.count }

    /// Holds `owner` until ``unregister(_:hadPending:)``: its entries call it back.
    func register(_ owner: any LoopTimerOwner) -> Registration {
        eventLoop.assertInEventLoop()
        return owners.insert(owner)
    }

    /// Releases the owner now; its entries are left to expire into nothing.
    /// `hadPending`: it had an entry in the heap (counted for the rebuild).
    func unregister(_ registration: Registration, hadPending: Bool) {
        eventLoop.assertInEventLoop()
        guard owners.remove(registration) != nil, hadPending else { return }
        abandoned += 1
        guard abandoned > 1_024, abandoned * 2 > heap.count else { return }
        heap = Heap(heap.unordered.filter { owners.contains($0.owner) })
        abandoned = 0
        // The NIO task stays armed: if the earliest entry went, it fires, finds nothing
        // due and re-arms for the new earliest.
    }

    /// Every registered owner, in slot order (the gateway's drain reaches the loop's
    /// open connections this way).
    func forEachOwner(_ body: (any LoopTimerOwner) -> Void) {
        eventLoop.assertInEventLoop()
        owners.forEach(body)
    }

    /// Calls the registered owner's ``LoopTimerOwner/loopTimerFired(at:)`` at
    /// `deadline`, unless it unregistered by then.
    func schedule(_ registration: Registration, at deadline: NIODeadline) {
        eventLoop.assertInEventLoop()
        heap.insert(Entry(deadline: deadline, owner: registration))
        if let taskDeadline, taskDeadline <= deadline { return }
        arm(deadline)
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
        var due: [(any LoopTimerOwner, NIODeadline)] = []
        while let first = heap.min, first.deadline <= now {
            let entry = heap.removeMin()
            if let owner = owners[entry.owner] {
                due.append((owner, entry.deadline))
            } else if abandoned > 0 {
                abandoned -= 1
            }
        }
        if let next = heap.min { arm(next.deadline) }
        // After the heap is settled: an owner re-arms from here.
        for (owner, deadline) in due { owner.loopTimerFired(at: deadline) }
    }
}

@available(*, unavailable)
extension LoopTimers: Sendable {}

/// One owner's timer in a ``LoopTimers``: the deadline of its pending entry and its
/// slot. Armed lazily: a target no earlier than the pending entry adds nothing (the
/// entry fires first and its owner re-arms then), and a new entry never lies further
/// ahead than the owner's cap (its stride), so new targets are rarely earlier.
struct LoopTimer {
    private(set) var deadline: NIODeadline?
    private var registration: LoopTimers.Registration?

    /// Lists `owner` in the slot table (once): the drain finds registered owners.
    mutating func register(_ owner: any LoopTimerOwner, in timers: LoopTimers) {
        if registration == nil { registration = timers.register(owner) }
    }

    /// Makes sure an entry fires no later than `target`; a new one at the earlier of
    /// `target` and `cap()` (read only when an entry is added).
    mutating func arm(_ target: NIODeadline, cap: () -> NIODeadline, owner: any LoopTimerOwner, in timers: LoopTimers) {
        if let deadline, deadline <= target { return }
        let at = min(target, cap())
        deadline = at
        register(owner, in: timers)
        timers.schedule(registration!, at: at)
    }

    /// An entry came due: whether it is the current one (then spent).
    mutating func fired(at due: NIODeadline) -> Bool {
        guard due == deadline else { return false }
        deadline = nil
        return true
    }

    /// Nothing is due any more; the owner stays listed.
    mutating func disarm() { deadline = nil }

    /// The owner is done: the slot table lets go of it; a pending entry fires into nothing.
    mutating func release(from timers: LoopTimers) {
        if let registration {
            timers.unregister(registration, hadPending: deadline != nil)
            self.registration = nil
        }
        deadline = nil
    }
}
