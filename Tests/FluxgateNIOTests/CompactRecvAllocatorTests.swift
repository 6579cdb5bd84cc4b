import NIOCore
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

    @Test func fitsAnExistentialWithoutABox() {
        #expect(MemoryLayout<CompactRecvAllocator>.size <= 3 * MemoryLayout<Int>.size)
        #expect(MemoryLayout<AdaptiveRecvByteBufferAllocator>.size > 3 * MemoryLayout<Int>.size, "NIO's needs a box")
    }
}
