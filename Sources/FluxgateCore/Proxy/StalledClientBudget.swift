import DequeModule

/// The memory one event loop holds for client connections that do not keep up, and
/// which of them to close when it passes the loop's share of
/// `limits.stalled_client_bytes`: the ones stalled longest, first.
///
/// A connection is *stalled* while the gateway stopped reading it with input queued
/// (pipelined requests waiting behind an answer, a body its upstream does not take),
/// while its request is incomplete (a head in parts, a body read into memory before
/// admission) or while its client takes none of what was written to it (NIO's write
/// buffer is past its high watermark). Each bound alone is per connection — 64 KiB of
/// queued input, `max_header_bytes`, `request_buffer_bytes`, the watermark plus one
/// answer, each under its timeout — and a client
/// that opens many such connections multiplies it: 1 000 pipeliners that read
/// nothing held ~109 KiB each (docs/SECURITY.md). This is the sum's bound, as Envoy's
/// overload manager resets the streams holding the most buffer memory under
/// pressure, and HAProxy's fixed per-connection buffers times `maxconn` bound its
/// memory.
///
/// Why the longest stalled: a client that stopped reading long ago is the least
/// likely to come back, and an attack's connections, opened first, go first while
/// a connection that stalls for a moment (a download on a slow link) usually
/// resumes before its turn comes.
///
/// Entries live in a slot table, found by an id that carries its slot's generation
/// (an id of an entry that left matches nothing), and in a queue in stall order.
/// The queue keeps records of entries that left until they reach its front, and is
/// rebuilt without them once they are the larger part. Pure: no clock — the order of
/// stalls is all it needs.
public struct StalledClientBudget<Payload> {
    public typealias ID = SlotID

    private struct Entry {
        var payload: Payload
        var bytes: Int
    }

    private var entries = SlotTable<Entry>()
    private var order = Deque<ID>()
    /// Bytes held by the stalled connections now.
    public private(set) var total = 0

    public init() {}

    /// Stalled connections now.
    public var count: Int { entries.count }

    /// Records in the stall queue, those of entries that left included (tests).
    public var queuedRecords: Int { order.count }

    /// `payload`'s connection holds `bytes` now: 0 when it is not stalled (it left
    /// the budget, or was never in it), else what it holds. `id` is its entry, nil
    /// when it has none; updated in place. A connection that stays stalled keeps its
    /// place in the order however its bytes change.
    ///
    /// Returns the connections to close, longest stalled first, so that ``total`` is
    /// at most `limit` (0: no bound) — `payload`'s own among them when it is the
    /// longest stalled. They have left the budget; their ids match nothing now.
    public mutating func hold(_ id: inout ID?, _ payload: @autoclosure () -> Payload, bytes: Int, limit: Int) -> [Payload] {
        if bytes > 0 {
            // One lookup: the entry's change, or nil when it is not held (any more).
            let change = id.flatMap { current in
                entries.update(current) { entry in
                    defer { entry.bytes = bytes }
                    return bytes - entry.bytes
                }
            }
            if let change {
                total += change
            } else {
                let new = entries.insert(Entry(payload: payload(), bytes: bytes))
                order.append(new)
                total += bytes
                id = new
            }
        } else {
            if let current = id, take(current) != nil { compactIfMostlyStale() }
            id = nil
        }
        return overLimit(limit)
    }

    /// Takes out the longest-stalled entries until ``total`` is at most `limit`.
    private mutating func overLimit(_ limit: Int) -> [Payload] {
        guard limit > 0, total > limit else { return [] }
        var closing: [Payload] = []
        while total > limit, let first = order.popFirst() {
            if let payload = take(first) { closing.append(payload) }
        }
        return closing
    }

    private mutating func take(_ id: ID) -> Payload? {
        guard let entry = entries.remove(id) else { return nil }
        total -= entry.bytes
        return entry.payload
    }

    /// Stall records of entries that left are dropped once they are more than half the
    /// queue (and over 64): the queue stays within about twice the entries.
    private mutating func compactIfMostlyStale() {
        guard order.count > 64, order.count > 2 * count else { return }
        order = Deque(order.filter { entries.contains($0) })
    }
}
