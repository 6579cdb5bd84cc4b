import NIOCore

/// On a TLS client connection, right after `NIOSSLServerHandler`: no more than
/// ``limit`` bytes are written between two flushes, whatever the handlers behind write
/// (responses, the gateway's answers, upgraded tunnels) — a flush is put in between.
///
/// swift-nio-ssl encrypts what was written before a flush into one buffer that it keeps
/// at its largest size for the connection's life (2.37's `NIOSSLHandler` passes `.max`
/// as `maximumPreservedOutboundBufferCapacity` whatever the configuration says): with
/// whole 64 KiB upstream reads per flush, every idle TLS connection that had downloaded
/// a large response kept ~70 KiB (docs/PERFORMANCE.md#memory-per-idle-connection).
/// Within one record's room the ciphertext fits the buffer's first 16 KiB. nginx writes
/// TLS in 16 KiB pieces too (`ssl_buffer_size`).
final class TLSWritePacer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A TLS record (16 KiB) less room for the records' overhead.
    static let recordRoom = 16_384 - 512
    let limit: Int
    private var unflushed = 0

    init(limit: Int = TLSWritePacer.recordRoom) {
        self.limit = limit
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var rest = unwrapOutboundIn(data)
        while true {
            if unflushed >= limit {
                context.flush()
                unflushed = 0
            }
            let piece = rest.readSlice(length: min(limit - unflushed, rest.readableBytes))!
            unflushed += piece.readableBytes
            guard rest.readableBytes > 0 else {
                // The last piece carries the write's promise (an empty write too).
                context.write(wrapOutboundOut(piece), promise: promise)
                return
            }
            context.write(wrapOutboundOut(piece), promise: nil)
        }
    }

    func flush(context: ChannelHandlerContext) {
        unflushed = 0
        context.flush()
    }
}
