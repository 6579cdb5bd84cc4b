/// Byte searches the head parsers share, sixteen bytes at a time.
///
/// A header line's bytes are checked for control characters one by one in the
/// parsers' first versions; that loop was the largest of the gateway's own
/// functions in a profile of the proxy path (docs/PERFORMANCE.md). Here a 16-byte
/// vector compare finds the first byte that needs a look; what the parsers decide
/// about that byte is unchanged.
enum ByteScan {
    /// The index of the first byte at or after `from` that is a control byte (below
    /// 0x20 — HTAB, CR and LF included — or DEL, 0x7F), or `bytes.count` when none is.
    @inline(__always)
    static func firstControl(in bytes: UnsafeRawBufferPointer, from: Int) -> Int {
        var index = from
        let count = bytes.count
        while index &+ 16 <= count {
            let chunk = bytes.loadUnaligned(fromByteOffset: index, as: SIMD16<UInt8>.self)
            let control = (chunk .< 0x20) .| (chunk .== 0x7F)
            if any(control) {
                // A true lane is all ones: the first one's byte offset is its lane.
                let words = unsafeBitCast(control, to: SIMD2<UInt64>.self)
                let bit = words[0] != 0 ? words[0].trailingZeroBitCount : 64 + words[1].trailingZeroBitCount
                return index + bit / 8
            }
            index &+= 16
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
