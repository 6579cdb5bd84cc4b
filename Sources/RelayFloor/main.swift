// A measuring tool, not part of the product: the cheapest HTTP/1.1 keep-alive relay
// SwiftNIO allows, to tell NIO's own cost per proxied request from Fluxgate's
// (bench/relay-floor.sh runs it beside nginx and Fluxgate). Each client connection
// gets its own upstream connection on the same event loop and bytes are copied both
// ways as they arrive: no parsing, no admission, no pool, no timeouts, no headers
// added. It is only correct for a client that sends one request at a time and an
// upstream that keeps its connections open, which is what the benchmark does.
//
// usage: fluxgate-relay-floor LISTEN_PORT UPSTREAM_PORT
import NIOCore
import NIOPosix

/// One side of the pair: what it reads is written to its partner.
final class Glue: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var partner: Glue?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil; partner = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
        partner = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReads() }
    }

    /// Reads wait while the partner cannot take more.
    func read(context: ChannelHandlerContext) {
        if let partner, let other = partner.context, !other.channel.isWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func resumeReads() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let listenPort = Int(arguments[1]), let upstreamPort = Int(arguments[2]) else {
    print("usage: fluxgate-relay-floor LISTEN_PORT UPSTREAM_PORT")
    exit(2)
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.autoRead, value: false)
    .childChannelInitializer { client in
        let near = Glue()
        let far = Glue()
        near.partner = far
        far.partner = near
        // Both sides live on the client's event loop.
        let pair = NIOLoopBound((near, far), eventLoop: client.eventLoop)
        return ClientBootstrap(group: client.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { upstream in
                upstream.eventLoop.makeCompletedFuture { try upstream.pipeline.syncOperations.addHandler(pair.value.1) }
            }
            .connect(host: "127.0.0.1", port: upstreamPort)
            .flatMapThrowing { _ in
                try client.pipeline.syncOperations.addHandler(pair.value.0)
                try client.syncOptions?.setOption(.autoRead, value: true)
            }
    }
    .bind(host: "127.0.0.1", port: listenPort)
    .wait()
print("relay-floor listening on 127.0.0.1:\(listenPort), upstream 127.0.0.1:\(upstreamPort)")
try server.closeFuture.wait()
