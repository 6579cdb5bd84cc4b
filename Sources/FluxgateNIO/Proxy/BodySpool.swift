import Glibc
import FluxgateCore
import NIOCore

/// One request body on disk while its request waits to be admitted
/// (``RequestBodyPlan``): an unnamed file in `limits.request_spool_dir` (created and
/// unlinked at once, so nothing is left behind by a crash or a kill), written as the
/// body arrives and read back in chunks once an upstream connection takes it.
///
/// The file is written and read with plain `write`/`pread` on the event loop, as nginx
/// does with its client body temp files: these land in the page cache and return in
/// microseconds. NIO's `NonBlockingFileIO` would move every chunk to a thread pool and
/// back with a future each — for bodies that are almost always still in the cache.
/// A disk that blocks for real (a full or failing device) shows as an error here (an
/// `IOError`, as NIO's own), which answers the request with 500 `spool_failed`.
///
/// Holds `reserved` bytes of the runtime's shared ``SpoolBudget`` until ``close()``.
final class BodySpool {
    private var descriptor: Int32
    private let runtime: GatewayRuntime
    private var reserved: Int
    /// Bytes written so far (the whole body once the request is complete).
    private(set) var written = 0
    /// Bytes handed to the upstream so far (``nextChunk(max:allocator:)``).
    private(set) var sent = 0

    /// Takes `reserve` bytes of the runtime's spool budget and opens the file; nil when
    /// the budget has not that much free. Throws when the file cannot be created (the
    /// reservation is given back first).
    static func open(directory: String, reserve: Int, runtime: GatewayRuntime) throws -> BodySpool? {
        guard runtime.reserveSpool(reserve) else { return nil }
        var template = Array((directory.hasSuffix("/") ? directory : directory + "/").utf8CString.dropLast())
        template += Array("fluxgate-body-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            let error = errno
            runtime.releaseSpool(reserve)
            throw IOError(errnoCode: error, reason: "creating a spool file in \(directory)")
        }
        // Unnamed from here on: the space is the kernel's to free when the descriptor closes.
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        return BodySpool(descriptor: descriptor, reserved: reserve, runtime: runtime)
    }

    private init(descriptor: Int32, reserved: Int, runtime: GatewayRuntime) {
        self.descriptor = descriptor
        self.reserved = reserved
        self.runtime = runtime
    }

    deinit { close() }

    /// Appends `bytes`; throws on a write error or when they would pass the reservation.
    func append(_ bytes: ByteBuffer) throws {
        guard written + bytes.readableBytes <= reserved else {
            throw IOError(errnoCode: EFBIG, reason: "spooling past the reserved \(reserved) bytes")
        }
        try bytes.withUnsafeReadableBytes { memory in
            var offset = 0
            while offset < memory.count {
                let result = Glibc.write(descriptor, memory.baseAddress! + offset, memory.count - offset)
                if result < 0 {
                    if errno == EINTR { continue }
                    throw IOError(errnoCode: errno, reason: "writing the spool file")
                }
                offset += result
            }
        }
        written += bytes.readableBytes
    }

    /// The body is complete: the part of the reservation it did not use goes back.
    func settle() {
        guard reserved > written else { return }
        let unused = reserved - written
        reserved = written
        runtime.releaseSpool(unused)
    }

    /// The next chunk is the body's first byte again (a resend of a held body).
    func rewind() { sent = 0 }

    /// Bytes not handed to the upstream yet.
    var unsent: Int { written - sent }

    /// Up to `max` of the next unsent bytes; nil when all were sent.
    func nextChunk(max: Int, allocator: ByteBufferAllocator) throws -> ByteBuffer? {
        let count = min(max, unsent)
        guard count > 0 else { return nil }
        var buffer = allocator.buffer(capacity: count)
        var failure: Int32 = 0
        let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { memory in
            var total = 0
            while total < count {
                let result = pread(descriptor, memory.baseAddress! + total, count - total, off_t(sent + total))
                if result < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return total
                }
                if result == 0 {
                    failure = EIO  // the file is shorter than what was written to it
                    return total
                }
                total += result
            }
            return total
        }
        if failure != 0 { throw IOError(errnoCode: failure, reason: "reading the spool file") }
        sent += read
        return buffer
    }

    /// Closes the file and gives the reservation back. Idempotent.
    func close() {
        guard descriptor >= 0 else { return }
        _ = Glibc.close(descriptor)
        descriptor = -1
        let held = reserved
        reserved = 0
        runtime.releaseSpool(held)
    }
}

@available(*, unavailable)
extension BodySpool: Sendable {}
