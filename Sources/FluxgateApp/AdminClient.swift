import FluxgateCore
import NIOCore
import NIOPosix

/// A one-request HTTP/1.1 client for `fluxgate reload` and `fluxgate healthcheck`: it
/// asks a running gateway's admin listener and reads the answer until the listener
/// closes (it is sent with `Connection: close`).
///
/// Every way of not getting an answer ends in a ``Failure`` that says what happened in
/// words — nothing listening, a connect that timed out, a listener that never answers
/// (after `answerTimeout`) — instead of a NIO error dump, and never in a crash
/// (a debug build used to stop on the response promise left unfulfilled when the
/// connect failed).
public enum AdminClient {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static func request(
        _ method: String, path: String, to endpoint: SocketEndpoint, answerTimeout: TimeAmount = .seconds(30)
    ) async throws -> (status: Int, body: String) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let result = try await request(method, path: path, to: endpoint, answerTimeout: answerTimeout, group: group)
            try? await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func request(
        _ method: String, path: String, to endpoint: SocketEndpoint, answerTimeout: TimeAmount, group: any EventLoopGroup
    ) async throws -> (status: Int, body: String) {
        let loop = group.next()
        let collector = ResponseCollector(promise: loop.makePromise())
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
                }
                .connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            collector.promise.fail(error)  // never read, but a promise must be completed
            throw Failure(description: "cannot reach the admin listener at \(endpoint): \(reason(error)) (is the gateway running, with admin_listen \(endpoint)?)")
        }
        let deadline = loop.scheduleTask(in: answerTimeout) {
            collector.promise.fail(Failure(description: "the admin listener at \(endpoint) accepted the connection but sent no complete answer within \(answerTimeout.nanoseconds / 1_000_000) ms"))
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        let request = "\(method) \(path) HTTP/1.1\r\nHost: \(endpoint)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        let text = try await collector.promise.futureResult.get()
        guard let headEnd = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "") else {
            throw Failure(description: "the admin listener at \(endpoint) closed without an HTTP answer\(text.isEmpty ? "" : ": \"\(text.prefix(80))\"")")
        }
        return (status, String(text[headEnd.upperBound...]))
    }

    /// What is wrong with an answer to `POST /reload` that is not a reload result: the
    /// admin listener answers 200 (reloaded) or 422 (refused) with the result as JSON;
    /// anything else came from something else — most often the data port given as
    /// `--admin`, whose upstream answered (a 404 body printed bare, found by trying it).
    public static func reloadAnswerProblem(status: Int, from endpoint: SocketEndpoint) -> String? {
        guard status != 200, status != 422 else { return nil }
        return "\(endpoint) answered \(status) to POST /reload, not a reload result: is it the gateway's admin listener (admin_listen), not its data port?"
    }

    /// Where to ask a gateway whose config file says `admin_listen: listener`: a listener
    /// on every interface (`0.0.0.0`, `::`) is asked on loopback, as `curl` on the same
    /// machine would; nil for port 0 (the kernel picks one: no file can say which).
    public static func endpoint(askingListener listener: SocketEndpoint) -> SocketEndpoint? {
        guard listener.port != 0 else { return nil }
        guard listener.isWildcard else { return listener }
        return SocketEndpoint(host: listener.host.contains(":") ? "::1" : "127.0.0.1", port: listener.port)
    }

    /// What is wrong with a path given to `fluxgate healthcheck --path`, or nil: it goes
    /// into the request line as it is, so it must be an origin-form target — a `/`
    /// first, then visible ASCII only (no space, control or non-ASCII byte). Without the
    /// check `--path readyz` reached the admin listener as `GET readyz`, whose 400 was
    /// printed as an unhealthy gateway (found by trying it).
    public static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "--path: \"\(path)\" must start with / (such as /healthz or /readyz)" }
        guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return "--path: \"\(path)\" may hold visible ASCII characters only (percent-encode the rest)"
        }
        return nil
    }

    /// The cause in words: "connection refused", not `NIOConnectionError`'s dump of every
    /// address tried.
    static func reason(_ error: any Error) -> String {
        var error = error
        if let connection = error as? NIOConnectionError {
            if let first = connection.connectionErrors.first { error = first.error } else if let dns = connection.dnsAAAAError ?? connection.dnsAError { error = dns }
        }
        if let io = error as? IOError { return errnoWords(io.errnoCode) }
        if case ChannelError.connectTimeout(let timeout) = error { return "no answer to the connect within \(timeout.nanoseconds / 1_000_000) ms" }
        return "\(error)"
    }

    private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<String>
        var text = ""
        init(promise: EventLoopPromise<String>) { self.promise = promise }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            text += String(buffer: unwrapInboundIn(data))
        }
        func channelInactive(context: ChannelHandlerContext) { promise.succeed(text) }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
            context.close(promise: nil)
        }
    }
}
