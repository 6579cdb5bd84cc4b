import NIOCore
import Testing

@testable import FluxgateNIO

/// ``PayloadGather``: one range stays a slice of the read, several become one buffer.
struct PayloadGatherTests {
    func gather(_ text: String, _ ranges: [Range<Int>]) -> ByteBuffer? {
        let read = ByteBuffer(string: text)
        var gather = PayloadGather()
        read.withUnsafeReadableBytes { bytes in
            for range in ranges { gather.add(range, of: bytes, allocator: ByteBufferAllocator()) }
        }
        return gather.payload(of: read)
    }

    @Test func oneRangeIsASliceOfTheReadAndSeveralAreCopiedTogether() {
        #expect(gather("abcdef", []) == nil)
        #expect(gather("abcdef", [2..<2]) == nil)
        #expect(gather("abcdef", [1..<4]).map { String(buffer: $0) } == "bcd")
        #expect(gather("1\r\na\r\n1\r\nb\r\n2\r\ncd\r\n", [3..<4, 9..<10, 15..<17]).map { String(buffer: $0) } == "abcd")
        #expect(gather("xaybz", [1..<2, 2..<2, 3..<4]).map { String(buffer: $0) } == "ab")
        // Read from a buffer whose reader index is not 0: ranges are relative to its readable bytes.
        var read = ByteBuffer(string: "HEADpayload")
        read.moveReaderIndex(forwardBy: 4)
        var one = PayloadGather()
        read.withUnsafeReadableBytes { one.add(0..<3, of: $0, allocator: ByteBufferAllocator()) }
        #expect(one.payload(of: read).map { String(buffer: $0) } == "pay")
    }
}
