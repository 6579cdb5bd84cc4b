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
struct CompactRecvAllocator: RecvByteBufferAllocator {
    static let minimum: UInt32 = 64
    static let maximum: UInt32 = 65_536

    private var next: UInt32
    private var decreaseNow = false

    /// `initial`: a power of two between the limits.
    init(initial: Int) {
        precondition(initial.nonzeroBitCount == 1 && initial >= Int(Self.minimum) && initial <= Int(Self.maximum))
        next = UInt32(initial)
    }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: Int(next))
    }

    func nextBufferSize() -> Int? { Int(next) }

    mutating func record(actualReadBytes: Int) -> Bool {
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
        if actualReadBytes >= Int(next) && next < Self.maximum {
            next <<= 1
            return true
        }
        return false
    }
}
