import FluxgateCore
import Synchronization

/// At most one log line per second for an event that can happen on every request
/// (a dry-run shed under real overload, descriptor exhaustion): the first caller in
/// each second gets `true`, across threads, with one relaxed load in the common case.
final class LogThrottle: Sendable {
    private let last = Atomic<Int64>(.min)

    func allow(now: MonotonicTime) -> Bool {
        let previous = last.load(ordering: .relaxed)
        guard previous == .min || now.nanoseconds &- previous >= 1_000_000_000 else { return false }
        return last.compareExchange(expected: previous, desired: now.nanoseconds, ordering: .relaxed).exchanged
    }
}
