import FluxgateCore

/// How a real application slows down under load: processor sharing.
///
/// Each request needs `work` of service time. Up to `capacity` requests are served
/// at full speed; beyond that the instance's capacity is shared equally, so every
/// request in flight progresses at `capacity / n` — all of them slow down together,
/// which is why an unprotected app collapses for everyone instead of failing a few.
///
/// Implemented with virtual time (the classic PS/GPS construction): all requests in
/// flight progress at the same rate, so the one with the smallest virtual finish tag
/// `V(arrival) + work` completes first; `V` advances at `min(1, capacity / n)`.
/// Time is passed in; nothing here reads a clock.
///
/// | capacity | in flight | rate | a 20 ms request takes |
/// |---|---|---|---|
/// | 50 | 25 | 1 | 20 ms |
/// | 50 | 50 | 1 | 20 ms |
/// | 50 | 100 | 0.5 | 40 ms |
/// | 50 | 400 | 0.125 | 160 ms |
public struct ProcessorSharing: Sendable {
    public let capacity: Int
    private var virtualTime: Double = 0
    private var lastUpdate: MonotonicTime
    /// (finish tag, request id), a binary min-heap on the tag.
    private var heap: [(tag: Double, id: Int)] = []

    public init(capacity: Int, now: MonotonicTime) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.lastUpdate = now
    }

    public var inFlight: Int { heap.count }

    private var rate: Double { heap.count <= capacity ? 1 : Double(capacity) / Double(heap.count) }

    /// A request needing `work` of service time starts now. Returns the requests
    /// that completed before it arrived (advance first, then add).
    public mutating func arrive(id: Int, work: Duration, now: MonotonicTime) -> [Int] {
        let done = advance(to: now)
        push((virtualTime + Double(work.nanosecondsClamped), id))
        return done
    }

    /// When the next request completes if nothing else arrives.
    public var nextCompletion: MonotonicTime? {
        guard let first = heap.first else { return nil }
        let remaining = (first.tag - virtualTime) / rate
        return MonotonicTime(nanoseconds: lastUpdate.nanoseconds + Int64(remaining.rounded(.up)))
    }

    /// Moves time forward; returns the ids that completed, in completion order.
    public mutating func advance(to now: MonotonicTime) -> [Int] {
        var completed: [Int] = []
        while let first = heap.first {
            let remaining = (first.tag - virtualTime) / rate
            let elapsed = Double(now.nanoseconds - lastUpdate.nanoseconds)
            if elapsed + 0.5 >= remaining {
                // Completes at lastUpdate + remaining.
                lastUpdate = MonotonicTime(nanoseconds: lastUpdate.nanoseconds + Int64(remaining.rounded()))
                virtualTime = first.tag
                completed.append(pop().id)
            } else {
                virtualTime += elapsed * rate
                lastUpdate = now
                return completed
            }
        }
        if now > lastUpdate { lastUpdate = now }
        return completed
    }

    private mutating func push(_ element: (tag: Double, id: Int)) {
        heap.append(element)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent].tag <= heap[child].tag { break }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    private mutating func pop() -> (tag: Double, id: Int) {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = parent * 2 + 1
                let right = left + 1
                var smallest = parent
                if left < heap.count && heap[left].tag < heap[smallest].tag { smallest = left }
                if right < heap.count && heap[right].tag < heap[smallest].tag { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }
}
