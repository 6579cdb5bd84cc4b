import Synchronization

/// One publisher of settings at a time: reloads (SIGHUP, `POST /reload`, the file watch)
/// and the address refresh. A reload that finds another under way waits its turn and
/// then reads the file itself — until 2026-12-06 it was refused ("a reload is already in
/// progress"), so a `fluxgate reload` or SIGHUP right after an edit, while the file
/// watch's reload of the previous version ran, could leave the edit unapplied (found
/// with SIGHUPs and `POST /reload`s against a file rewritten every 50 ms). The address
/// refresh only tries: it runs again at its next interval.
///
/// Hand-written: neither the standard library, SwiftNIO nor the other packages this
/// project may use has an async lock (`Mutex` blocks a thread; an actor lets other calls
/// in at every suspension point, and a reload suspends while each event loop takes the
/// new settings).
final class ReloadLock: Sendable {
    private struct State {
        var held = false
        /// In arrival order; the lock passes to the first when it is released.
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    /// Takes the lock when it is free; false, at once, when it is held.
    func tryAcquire() -> Bool {
        state.withLock { state in
            guard !state.held else { return false }
            state.held = true
            return true
        }
    }

    /// Takes the lock, waiting for the holder and those before this caller.
    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let free = state.withLock { state in
                guard state.held else {
                    state.held = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if free { continuation.resume() }
        }
    }

    /// Gives the lock to the first waiter, or frees it.
    func release() {
        let next: CheckedContinuation<Void, Never>? = state.withLock { state in
            guard !state.waiters.isEmpty else {
                state.held = false
                return nil
            }
            return state.waiters.removeFirst()  // still held: it passes on
        }
        next?.resume()
    }

    /// Callers waiting now (tests).
    var waiting: Int { state.withLock { $0.waiters.count } }
}
