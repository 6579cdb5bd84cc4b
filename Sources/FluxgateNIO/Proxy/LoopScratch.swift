#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
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
    /// Where this loop's idle connections are parked (``ParkingLot``); nil: never parked.
    var parking: ParkingLot?
    /// This loop's client connections that do not keep up and what they hold
    /// (``ProxyHandler/accountStall()``).
    var stalledClients = StalledClientBudget<ProxyHandler>()
    /// The `date` field line of the current second (``dateField(now:)``).
    private var dateLine = DateFieldLine()
    private var dateBuffer = ByteBuffer()
    /// The wall clock (seconds and nanoseconds since the epoch); tests replace it.
    var wallClock: () -> (seconds: Int64, nanoseconds: Int64) = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (Int64(now.tv_sec), Int64(now.tv_nsec))
    }

    /// `date: <IMF-fixdate>\r\n` at `now` — the event's monotonic time, already read —
    /// (RFC 9110 §6.6.1), for the gateway's own answers and for a relayed response that
    /// carries none: the wall clock read and the line formatted once per second per
    /// loop (``DateFieldLine``), each use a reference to the same bytes.
    func dateField(now: MonotonicTime) -> ByteBuffer {
        withDateField(now: now) { $0 }
    }

    /// ``dateField(now:)`` lent in place for the length of `body`: returned, the line
    /// is a retain and a release of its buffer (the shed path's, per shed).
    func withDateField<T>(now: MonotonicTime, _ body: (inout ByteBuffer) -> T) -> T {
        if dateLine.update(now: now, wallClock: wallClock) { dateBuffer = allocator.buffer(bytes: dateLine.line) }
        return body(&dateBuffer)
    }

    /// The gateway's event loops: budgets split between them (each loop closes its own
    /// connections at its share).
    var loops = 1

    /// This loop's share of a gateway-wide byte budget, rounded up (0 stays 0: no bound).
    func loopShare(of limit: Int) -> Int {
        limit <= 0 ? 0 : (limit + loops - 1) / loops
    }

    init(eventLoop: any EventLoop) {
        timers = LoopTimers(eventLoop: eventLoop)
    }

    /// The loop's request head, or a new one while it is lent out.
    func takeRequestHead() -> RequestHead { requestHead.take() ?? RequestHead() }

    /// A head given back, reset.
    func keepRequestHead(_ head: consuming RequestHead) { requestHead = head }

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

    /// Receive buffers by size class (64 B · 2^i, i = 0…10), lent to NIO's reads on
    /// this loop's connections (``CompactRecvAllocator``) and given back when their
    /// bytes are handled, so no connection keeps one while idle. At most 512 KiB per
    /// class (at least 8 buffers) are kept.
    private var receiveBuffers: [[ByteBuffer]] = Array(repeating: [], count: 11)

    /// Receive buffers lent to reads so far (tests: NIO asks the loop, not its channel's own).
    private(set) var receiveBuffersLent = 0

    /// A buffer of at least `capacity` bytes (a power of two, 64 B…64 KiB) for a read.
    func takeReceiveBuffer(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        receiveBuffersLent &+= 1
        // Its own class, else the next one up (a buffer grown by appending lands there).
        let sizeClass = Self.receiveClass(capacity)
        guard var buffer = receiveBuffers[sizeClass].popLast() ?? (sizeClass < 10 ? receiveBuffers[sizeClass + 1].popLast() : nil) else {
            return allocator.buffer(capacity: capacity)
        }
        buffer.clear()
        return buffer
    }

    /// A receive buffer whose bytes were handled (slices of it may still wait in a
    /// write queue: copy-on-write gives the next reader fresh storage then).
    func keepReceiveBuffer(_ buffer: ByteBuffer) {
        let capacity = buffer.capacity
        guard capacity >= 64, capacity <= 131_072 else { return }
        let sizeClass = Self.receiveClass(capacity)
        guard receiveBuffers[sizeClass].count < max(8, 524_288 >> (sizeClass + 6)) else { return }
        receiveBuffers[sizeClass].append(buffer)
    }

    /// Receive buffers kept now (tests).
    var keptReceiveBuffers: Int { receiveBuffers.reduce(0) { $0 + $1.count } }

    /// floor(log2(capacity)) − 6, within 0…10: every buffer in class i holds at least 64 · 2^i bytes.
    private static func receiveClass(_ capacity: Int) -> Int {
        min(10, max(0, (Int.bitWidth - 1 - capacity.leadingZeroBitCount) - 6))
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
