import NIOCore
import NIOEmbedded
import Testing

@testable import FluxgateNIO

/// The gateway's receive allocator decides exactly as NIO's adaptive one, and fits an
/// existential's inline storage (its reason to exist: no heap box per connection).
struct CompactRecvAllocatorTests {
    @Test func decidesAsNIOsAdaptiveAllocatorReadByRead() {
        var ours = CompactRecvAllocator(initial: 256)
        var nio = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65_536)
        // Runs of full reads (growth to the cap), small reads (shrinking to the floor)
        // and a deterministic pseudo-random mix in between.
        var reads = Array(repeating: 70_000, count: 12) + Array(repeating: 1, count: 30)
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<5_000 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            reads.append(Int(seed >> 33) % 70_000 >> Int(seed & 15))
        }
        for (index, read) in reads.enumerated() {
            #expect(ours.nextBufferSize() == nio.nextBufferSize(), "before read \(index)")
            #expect(ours.record(actualReadBytes: read) == nio.record(actualReadBytes: read), "read \(index): \(read) bytes")
        }
        #expect(ours.buffer(allocator: ByteBufferAllocator()).capacity >= nio.nextBufferSize()!)
    }

    /// A TLS client connection's ceiling (one record) decides as NIO's with that maximum.
    @Test func aCeilingCapsItAsNIOsMaximumDoes() {
        var ours = CompactRecvAllocator(initial: 256, ceiling: ProxyHandler.tlsChunk)
        var nio = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: ProxyHandler.tlsChunk)
        for (index, read) in (Array(repeating: 70_000, count: 12) + Array(repeating: 1, count: 20) + Array(repeating: 20_000, count: 8)).enumerated() {
            #expect(ours.nextBufferSize() == nio.nextBufferSize(), "before read \(index)")
            #expect(ours.record(actualReadBytes: read) == nio.record(actualReadBytes: read), "read \(index)")
            #expect(ours.nextBufferSize()! <= 16_384)
        }
    }

    @Test func fitsAnExistentialWithoutABox() {
        #expect(MemoryLayout<CompactRecvAllocator>.size <= 3 * MemoryLayout<Int>.size)
        #expect(MemoryLayout<AdaptiveRecvByteBufferAllocator>.size > 3 * MemoryLayout<Int>.size, "NIO's needs a box")
    }

    /// With a loop's scratch, NIO is told nothing to reuse (no size, "may grow"): it asks
    /// the allocator for every read, and the buffer comes from the loop.
    @Test func withAScratchEveryReadBorrowsFromTheLoop() {
        let loop = EmbeddedEventLoop()
        let scratch = LoopScratch(eventLoop: loop)
        var lent = CompactRecvAllocator(initial: 256, scratch: scratch)
        #expect(lent.nextBufferSize() == nil)
        let mayGrow = lent.record(actualReadBytes: 10)
        #expect(mayGrow, "a small read still says the next may be larger: NIO does not reuse its own buffer")
        var kept = ByteBufferAllocator().buffer(capacity: 256)
        kept.writeString("bytes handled")
        scratch.keepReceiveBuffer(kept)
        #expect(scratch.keptReceiveBuffers == 1)
        let buffer = lent.buffer(allocator: ByteBufferAllocator())
        #expect(buffer.capacity >= 256 && buffer.readableBytes == 0, "cleared")
        #expect(scratch.keptReceiveBuffers == 0, "taken from the loop")
        #expect(scratch.receiveBuffersLent == 1)
        try? loop.syncShutdownGracefully()
    }
}

/// The loop's receive buffers: by size class, bounded, never too small for a read.
struct LoopReceiveBufferTests {
    @Test func buffersComeBackBySizeClassAndWithinBounds() {
        let loop = EmbeddedEventLoop()
        let scratch = LoopScratch(eventLoop: loop)
        let allocator = ByteBufferAllocator()
        scratch.keepReceiveBuffer(allocator.buffer(capacity: 65_536))
        scratch.keepReceiveBuffer(allocator.buffer(capacity: 256))
        scratch.keepReceiveBuffer(allocator.buffer(capacity: 32))  // too small to lend
        scratch.keepReceiveBuffer(allocator.buffer(capacity: 1 << 20))  // too large to keep
        #expect(scratch.keptReceiveBuffers == 2)
        // A 512-byte read does not get the 256-byte buffer, nor the 64 KiB one.
        #expect(scratch.takeReceiveBuffer(capacity: 512, allocator: allocator).capacity < 65_536)
        #expect(scratch.keptReceiveBuffers == 2)
        // A 128-byte read may get the 256-byte one (the next class up).
        #expect(scratch.takeReceiveBuffer(capacity: 128, allocator: allocator).capacity == 256)
        #expect(scratch.keptReceiveBuffers == 1)
        scratch.keepReceiveBuffer(allocator.buffer(capacity: 256))
        #expect(scratch.takeReceiveBuffer(capacity: 65_536, allocator: allocator).capacity >= 65_536)
        #expect(scratch.takeReceiveBuffer(capacity: 256, allocator: allocator).capacity >= 256)
        #expect(scratch.keptReceiveBuffers == 0)
        // At most 512 KiB per class (8 buffers of 64 KiB).
        for _ in 0..<20 { scratch.keepReceiveBuffer(allocator.buffer(capacity: 65_536)) }
        #expect(scratch.keptReceiveBuffers == 8)
        try? loop.syncShutdownGracefully()
    }
}
