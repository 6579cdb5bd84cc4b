import FluxgateCore
import NIOCore

/// Writes a head the gateway assembles (the upstream request head, the client's
/// response head) as plain copies into capacity reserved once.
///
/// Each `ByteBuffer.write…` call checks that the storage is uniquely referenced,
/// that it has room and moves the writer index: a head of a dozen pieces paid for
/// that a dozen times — `swift_isUniquelyReferenced`, `_ensureAvailableCapacity` and
/// `_setBytes` were together 1.7 % of the samples in a profile, some 5 % of the
/// gateway's user time, not all of it from heads
/// (docs/results/perf-2026-12-01c/profile-ba2e8a8.txt). NIO offers the reserved bytes in one call
/// (`writeWithUnsafeMutableBytes`); this is the cursor over them.
///
/// It never writes past the reservation: a piece that does not fit marks the
/// writer overflowed and is dropped, and ``ByteBuffer/writeHead(estimate:_:)`` writes
/// the head again into twice the room. Estimates cover every piece in practice; the
/// retry is what makes a wrong estimate cost time instead of memory safety.
struct HeadWriter {
    private let base: UnsafeMutableRawBufferPointer
    private(set) var count = 0
    private(set) var overflowed = false

    init(_ base: UnsafeMutableRawBufferPointer) {
        self.base = base
    }

    @inline(__always)
    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard !overflowed, bytes.count <= base.count &- count else {
            overflowed = true
            return
        }
        if bytes.count > 0 {
            (base.baseAddress! + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            count &+= bytes.count
        }
    }

    @inline(__always)
    mutating func write(_ text: StaticString) {
        write(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A buffer's readable bytes.
    mutating func write(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { write($0) }
    }

    /// A String's bytes in place (`withUTF8` on a copy would retain its storage).
    mutating func write(_ text: String) {
        let done: Void? = text.utf8.withContiguousStorageIfAvailable { write(UnsafeRawBufferPointer($0)) }
        if done == nil {
            var copy = text
            copy.withUTF8 { write(UnsafeRawBufferPointer($0)) }
        }
    }

    mutating func write(_ id: RequestID) {
        switch id {
        case .client(let text): text.withUTF8 { write($0) }
        case .generated(let value):
            // Straight into the reservation (through `withUTF8` it went by a temporary).
            guard !overflowed, base.count &- count >= 16 else {
                overflowed = true
                return
            }
            RequestID.writeHex(value, to: base.baseAddress! + count)
            count &+= 16
        }
    }

    /// `name: value\r\n`.
    mutating func writeField(_ name: StaticString, _ id: RequestID) {
        write(name)
        write(": ")
        write(id)
        write("\r\n")
    }

    /// The end of a head the gateway writes: `X-Request-ID`, then `Connection` as
    /// decided (close, or keep-alive spelled out for HTTP/1.0), then the blank line.
    mutating func endHead(requestID: RequestID?, close: Bool, http10: Bool) {
        if let requestID { writeField("x-request-id", requestID) }
        if close {
            write("connection: close\r\n")
        } else if http10 {
            write("connection: keep-alive\r\n")
        }
        write("\r\n")
    }

    /// The room ``endHead(requestID:close:http10:)`` needs beyond the request ID's bytes.
    static let endHeadBytes = 48
}

extension ByteBuffer {
    /// Writes a head through a ``HeadWriter`` over at least `estimate` reserved bytes;
    /// if a piece did not fit, the head is written again into twice the room (`body`
    /// must write the same bytes each time it is called).
    mutating func writeHead(estimate: Int, _ body: (inout HeadWriter) -> Void) {
        var room = Swift.max(estimate, 64)
        while true {
            var fitted = false
            writeWithUnsafeMutableBytes(minimumWritableBytes: room) { memory in
                var writer = HeadWriter(memory)
                body(&writer)
                fitted = !writer.overflowed
                return fitted ? writer.count : 0
            }
            if fitted { return }
            room *= 2
        }
    }
}
