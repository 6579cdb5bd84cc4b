import FluxgateCore
import NIOCore

/// Buffers an event loop's client connections take turns with, so the bytes the
/// gateway writes itself — a shed or other answer, a response head for the client —
/// and the field list of a parsed upstream head cost no allocation per request.
///
/// A buffer is taken (the loop's copy is dropped), filled, written, and a copy kept
/// again. NIO drops its own copy once the write reached the socket — on loopback and
/// on any client that keeps up, within the same write call — so the next taker
/// finds the storage unreferenced and `clear()` reuses it. A taker that finds it
/// still referenced (a write still queued) gets fresh storage from `clear()`: never
/// shared bytes, only an allocation, as before. One set per loop, not per
/// connection: held per connection, they would triple an idle connection's memory
/// (docs/PERFORMANCE.md).
///
/// Upstream request heads are kept apart, as spares: an exchange holds its head
/// until it ends (to send it again on a stale connection or a retry), so the loop's
/// exchanges in flight each hold one; an ended exchange's head waits here for the next
/// request (``takeUpstreamHead()``), which saves the two allocations of a new buffer.
final class LoopScratch {
    /// Heads of ended exchanges (``keepUpstreamHead(_:)``), at most ``maxSpareHeads``.
    private var spareHeads: [ByteBuffer] = []
    /// Enough for this many exchanges in flight on one loop to start without allocating;
    /// at most 256 × 4 KiB held.
    static let maxSpareHeads = 256

    private var answer: ByteBuffer?
    private var responseHead: ByteBuffer?
    /// Storage for ``ResponseHeadParser``'s field list.
    var responseFields: [ResponseHead.Field] = []
    /// The request head ``RequestHeadParser`` fills, with its field list's storage:
    /// lent to a connection while it parses and handles a head, given back after
    /// (an idle connection keeps none; one whose head arrives in parts keeps its own).
    private var requestHead: RequestHead? = RequestHead()
    /// NIO's default allocator, which the gateway's channels use (one copy per loop,
    /// not 32 bytes in every connection's handler).
    let allocator = ByteBufferAllocator()
    /// The loop's shared timer for its connections' timeouts (``LoopTimers``).
    let timers: LoopTimers

    init(eventLoop: any EventLoop) {
        timers = LoopTimers(eventLoop: eventLoop)
    }

    /// The loop's request head, or a new one while it is lent out.
    func takeRequestHead() -> RequestHead { requestHead.take() ?? RequestHead() }

    /// A head given back, reset.
    func keepRequestHead(_ head: RequestHead) { requestHead = head }

    func takeAnswer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        Self.take(&answer, capacity: capacity, allocator: allocator)
    }

    func keepAnswer(_ buffer: ByteBuffer) { answer = buffer }

    func takeResponseHead(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        Self.take(&responseHead, capacity: capacity, allocator: allocator)
    }

    func keepResponseHead(_ buffer: ByteBuffer) { responseHead = buffer }

    /// An ended exchange's upstream head buffer, cleared, or a new one.
    func takeUpstreamHead(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var spare = spareHeads.popLast()
        return Self.take(&spare, capacity: capacity, allocator: allocator)
    }

    /// An ended exchange's upstream head, kept for a later request unless enough are
    /// kept or it grew large (a head with long fields is not held for small ones).
    func keepUpstreamHead(_ buffer: ByteBuffer) {
        guard buffer.capacity > 0, buffer.capacity <= 4_096, spareHeads.count < Self.maxSpareHeads else { return }
        spareHeads.append(buffer)
    }

    /// Spare upstream heads kept now (tests).
    var spareUpstreamHeads: Int { spareHeads.count }

    /// The slot's buffer, moved out (a second reference would make `clear()` allocate)
    /// and cleared, or a new one. Copy-on-write keeps it safe: storage still referenced
    /// by a queued write is never written into; `clear()` allocates then.
    private static func take(_ slot: inout ByteBuffer?, capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var buffer = slot.take(), buffer.capacity <= 65_536 else { return allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }
}

@available(*, unavailable)
extension LoopScratch: Sendable {}
