import NIOCore

/// A body read's payload ranges (from ``BodyFramer``) as one buffer to pass on.
///
/// The only range of a read goes on as a slice of the read, without a copy: a
/// `Content-Length` body, or chunks as big as the read. Several ranges — small chunks —
/// are copied together into one buffer: passed on one by one, each would be a buffer of
/// its own (and, re-chunked for the upstream, a chunk-size line of its own), so a client
/// sending 1-byte chunks made the gateway hold ~130 bytes per payload byte (64 KiB of
/// payload in 1-byte chunks: ~8 MiB of memory, and ~0.9 µs of CPU a chunk;
/// docs/results/tiny-chunks-2026-12-04). nginx likewise copies a chunked body's payload
/// into its body buffers.
struct PayloadGather {
    private var only: Range<Int>?
    private var merged: ByteBuffer?

    /// Adds the payload at `range` of `bytes` (the read's readable bytes, `capacity` of
    /// them: no read's payload is longer).
    mutating func add(_ range: Range<Int>, of bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) {
        guard !range.isEmpty else { return }
        if merged != nil {
            merged!.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
        } else if let first = only {
            var buffer = allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[first]))
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
            merged = buffer
            only = nil
        } else {
            only = range
        }
    }

    /// The payload gathered from `read` (whose readable bytes the ranges were
    /// relative to), or nil when there was none.
    func payload(of read: ByteBuffer) -> ByteBuffer? {
        if let merged { return merged }
        guard let only else { return nil }
        return read.getSlice(at: read.readerIndex + only.lowerBound, length: only.count)
    }
}
