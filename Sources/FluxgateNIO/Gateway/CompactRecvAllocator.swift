import NIOCore

/// NIO's `AdaptiveRecvByteBufferAllocator` policy (start at `initial`; double after a
/// read that filled the buffer; halve after two reads in a row that used half or less;
/// between 64 bytes and 64 KiB) in an 8-byte struct.
///
/// Written here for memory alone: every channel keeps its own copy of the receive
/// allocator in an existential, and NIO's adaptive one (three `Int` limits, the next
/// size and a flag: 33 bytes) does not fit the existential's 24 inline bytes, so each
/// client connection carried a 48-byte heap box for it — 49 bytes per idle connection
/// in heaptrack (docs/results/idle-memory-2026-12-01b/heaptrack-per-connection.txt).
/// The limits are constants here, so the value fits inline and no box is made.
/// `CompactRecvAllocatorTests` checks it against NIO's allocator read by read.
///
/// **With a loop's `LoopScratch`** (the gateway's client and upstream connections) the
/// buffers come from the loop and go back to it instead of staying with the channel.
/// NIO's channel keeps the receive buffers it reads into for reuse and never shrinks
/// them: one 200 KB upload (and its echo) left **155 KiB** of buffers on each idle
/// keep-alive connection (measured with the live-heap counter: 500 such connections
/// would hold 78 MB, 10 000 of them 1.5 GB — a client could park memory on the gateway
/// that way). So `nextBufferSize()` answers nil and `record` says the next read may
/// be larger, which makes NIO ask ``buffer(allocator:)`` for every read instead of
/// reusing its own (with `maxMessagesPerRead` 1 it then keeps none but the first, a
/// `initial`-byte buffer, as before); the connection gives the buffer back to the
/// loop once its bytes are handled (``LoopScratch/keepReceiveBuffer(_:)``), and the
/// loop's next read on any connection reuses it. An idle connection holds no buffer
/// that grew, and steady traffic allocates none.
struct CompactRecvAllocator: RecvByteBufferAllocator, @unchecked Sendable {
    // @unchecked: `scratch` is the loop's own, and NIO calls a channel's allocator on
    // that channel's loop only.
    static let minimum: UInt32 = 64
    static let maximum: UInt32 = 65_536

    private var next: UInt32
    /// The largest buffer: ``maximum``, or less (TLS client connections: one record).
    private let ceiling: UInt32
    private var decreaseNow = false
    private let scratch: LoopScratch?

    /// `initial`: a power of two between the limits. `scratch`: the channel's loop's
    /// (buffers lent per read, above); nil: NIO keeps and reuses the channel's buffer.
    /// `ceiling`: a power of two, at least `initial`, at most ``maximum``: a TLS client
    /// connection reads at most 16 KiB (one TLS record) at a time, because swift-nio-ssl
    /// decrypts a read into a plaintext buffer it keeps for the connection's life and
    /// grows to fit — 64 KiB reads left ~100 KiB on every idle TLS connection that had
    /// uploaded a large body (docs/PERFORMANCE.md#memory-per-idle-connection).
    init(initial: Int, scratch: LoopScratch? = nil, ceiling: Int = Int(maximum)) {
        precondition(initial.nonzeroBitCount == 1 && initial >= Int(Self.minimum) && initial <= Int(Self.maximum))
        precondition(ceiling.nonzeroBitCount == 1 && ceiling >= initial && ceiling <= Int(Self.maximum))
        next = UInt32(initial)
        self.ceiling = UInt32(ceiling)
        self.scratch = scratch
    }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        scratch?.takeReceiveBuffer(capacity: Int(next), allocator: allocator) ?? allocator.buffer(capacity: Int(next))
    }

    func nextBufferSize() -> Int? { scratch == nil ? Int(next) : nil }

    mutating func record(actualReadBytes: Int) -> Bool {
        let mayGrow = adapt(actualReadBytes: actualReadBytes)
        return scratch != nil || mayGrow
    }

    /// NIO's adaptive policy; true when the next buffer is larger.
    private mutating func adapt(actualReadBytes: Int) -> Bool {
        let half = next >> 1
        if actualReadBytes <= Int(half) && half >= Self.minimum {
            if decreaseNow {
                next = half
                decreaseNow = false
            } else {
                decreaseNow = true
            }
            return false
        }
        decreaseNow = false
        if actualReadBytes >= Int(next) && next < ceiling {
            next <<= 1
            return true
        }
        return false
    }
}
