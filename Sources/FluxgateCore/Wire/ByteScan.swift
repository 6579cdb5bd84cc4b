/// Byte searches the head parsers share, eight bytes at a time.
///
/// A header line's bytes were checked for control characters one by one; here a
/// 64-bit word is tested for them at once (the bit tricks of "Bit Twiddling Hacks",
/// Sean Eron Anderson: `hasless` and `haszero`), and only the byte found gets a look;
/// what the parsers decide about that byte is unchanged. (A version with Swift's
/// `SIMD16<UInt8>` was tried first: on Linux its mask reduction stayed generic and the
/// line scan took 23 % of the gateway's user time — measured, docs/PERFORMANCE.md.)
enum ByteScan {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The index of the first byte at or after `from` that is a control byte (below
    /// 0x20 — HTAB, CR and LF included — or DEL, 0x7F), or `bytes.count` when none is.
    @inline(__always)
    static func firstControl(in bytes: UnsafeRawBufferPointer, from: Int) -> Int {
        var index = from
        let count = bytes.count
        while index &+ 8 <= count {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            // A byte below 0x20, and a byte equal to 0x7F (a zero byte after xor). Either
            // test may also flag bytes above a true hit (a borrow runs upward), never
            // below one: the lowest flag is exact.
            let below = (word &- ones &* 0x20) & ~word & highs
            let flipped = word ^ (ones &* 0x7F)
            let delete = (flipped &- ones) & ~flipped & highs
            let flags = below | delete
            if flags != 0 { return index &+ flags.trailingZeroBitCount / 8 }
            index &+= 8
        }
        while index < count {
            let byte = bytes[index]
            if byte < 0x20 || byte == 0x7F { return index }
            index += 1
        }
        return count
    }

    /// The index of the first control byte other than HTAB at or after `from` (a field
    /// value's end: CR, or something to refuse), or `bytes.count`.
    @inline(__always)
    static func firstControlExceptTab(in bytes: UnsafeRawBufferPointer, from: Int) -> Int {
        var index = from
        while true {
            index = firstControl(in: bytes, from: index)
            guard index < bytes.count, bytes[index] == 0x09 else { return index }
            index += 1
        }
    }
}
