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
/// The upstream request head is not among them: the exchange keeps it until its
/// response started (to send it again on a stale connection), and other requests on
/// the loop are taken meanwhile.
final class LoopScratch {
    private var answer: ByteBuffer?
    private var responseHead: ByteBuffer?
    /// Storage for ``ResponseHeadParser``'s field list.
    var responseFields: [ResponseHead.Field] = []
    /// Storage for ``RequestHeadParser``'s field list: lent to a connection while it
    /// parses a head, given back when the head was handled (an idle connection keeps none).
    var requestFields: [RequestHead.Field] = []
    /// The loop's shared timer for client connection timeouts.
    let timers: LoopTimers

    init(eventLoop: any EventLoop) {
        timers = LoopTimers(eventLoop: eventLoop)
    }

    func takeAnswer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        Self.take(&answer, capacity: capacity, allocator: allocator)
    }

    func keepAnswer(_ buffer: ByteBuffer) { answer = buffer }

    func takeResponseHead(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        Self.take(&responseHead, capacity: capacity, allocator: allocator)
    }

    func keepResponseHead(_ buffer: ByteBuffer) { responseHead = buffer }

    private static func take(_ slot: inout ByteBuffer?, capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var buffer = slot.take(), buffer.capacity <= 65_536 else { return allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }
}

@available(*, unavailable)
extension LoopScratch: Sendable {}
