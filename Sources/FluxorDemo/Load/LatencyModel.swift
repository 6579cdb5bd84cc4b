import FluxgateCore
import NIOCore

/// The I/O shell around ``ProcessorSharing``: one per demo instance, owning the model
/// on one event loop with one timer for the next completion. Requests from any loop
/// submit their service demand here and are called back when the model says they are
/// done. (A hop per request is fine for a demo app; the gateway itself never hops.)
final class LatencyModel: Sendable {
    private let loop: any EventLoop
    private let state: NIOLoopBoundBox<ModelState>

    private struct ModelState {
        var model: ProcessorSharing
        var waiting: [Int: @Sendable () -> Void] = [:]
        var nextID = 0
        var timer: Scheduled<Void>?
    }

    init(capacity: Int, loop: any EventLoop) {
        self.loop = loop
        let now = MonotonicTime(nanoseconds: Int64(loop.now.uptimeNanoseconds))
        self.state = NIOLoopBoundBox.makeBoxSendingValue(
            ModelState(model: ProcessorSharing(capacity: capacity, now: now)), eventLoop: loop)
    }

    /// Starts a request needing `work`; `done` runs (on the model's loop) when served.
    func submit(work: Duration, done: @escaping @Sendable () -> Void) {
        loop.execute {
            let now = self.now
            let id = self.state.value.nextID
            self.state.value.nextID += 1
            self.state.value.waiting[id] = done
            let completed = self.state.value.model.arrive(id: id, work: work, now: now)
            self.finish(completed)
            self.rearm()
        }
    }

    private var now: MonotonicTime { MonotonicTime(nanoseconds: Int64(loop.now.uptimeNanoseconds)) }

    private func finish(_ ids: [Int]) {
        for id in ids {
            if let done = state.value.waiting.removeValue(forKey: id) { done() }
        }
    }

    private func rearm() {
        state.value.timer?.cancel()
        state.value.timer = nil
        guard let next = state.value.model.nextCompletion else { return }
        state.value.timer = loop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, next.nanoseconds)))) {
            let completed = self.state.value.model.advance(to: self.now)
            self.finish(completed)
            self.rearm()
        }
    }
}
