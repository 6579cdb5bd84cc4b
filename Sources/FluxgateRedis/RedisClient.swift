import Crypto
import DequeModule
import NIOCore
import NIOPosix
import NIOSSL

/// Why a command got no reply from Redis. Server error replies are not errors here:
/// they come back as ``RESPValue/error(_:)`` for the caller to read.
public enum RedisError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Not connected, and the next attempt is not due yet (reconnect backoff).
    case unavailable(String)
    /// No reply within the command timeout; the connection is closed (replies are
    /// matched to commands by order, so a late one could not be told apart).
    case timeout
    /// The connection closed before the reply came.
    case connectionClosed
    /// AUTH or SELECT was refused on connect.
    case refused(String)
    case malformed(String)
    /// The client was closed.
    case shutDown

    public var description: String {
        switch self {
        case .unavailable(let why): "redis unavailable: \(why)"
        case .timeout: "redis command timed out"
        case .connectionClosed: "redis connection closed"
        case .refused(let why): "redis refused the connection setup: \(why)"
        case .malformed(let why): why
        case .shutDown: "redis client closed"
        }
    }
}

/// A Lua script sent by SHA1 (`EVALSHA`), and in full when the server does not know it
/// yet (`NOSCRIPT`, e.g. after a Redis restart).
public struct RedisScript: Sendable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// A small pipelined Redis client (RESP2) over one connection on one event loop.
///
/// Hand-written because no Swift Redis client is in the package set Fluxgate builds
/// from (RediStack and valkey-swift are not mirrored here); it does only what the
/// cluster mode needs, optionally over TLS (swift-nio-ssl). Commands may be sent from any thread; each hops to the client's
/// loop, is written at once (pipelined: replies come back in order) and is failed
/// after `commandTimeout`. A lost connection is re-dialled on the next command after
/// an exponential backoff (`backoff` doubling to `maxBackoff`); while the backoff runs
/// commands fail at once with ``RedisError/unavailable(_:)`` — callers never queue
/// behind a dead server.
public final class RedisClient: @unchecked Sendable {
    // @unchecked: every stored var below is touched only on `loop` (asserted).
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var username: String?
        public var password: String?
        public var database: Int
        public var connectTimeout: TimeAmount
        public var commandTimeout: TimeAmount
        public var backoff: TimeAmount
        public var maxBackoff: TimeAmount
        /// TLS (`rediss://`): the client context, and the name sent as SNI and
        /// verified (nil for an address literal, checked against the certificate's IP SANs).
        public var tls: NIOSSLContext?
        public var serverName: String?

        public init(
            host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0,
            connectTimeout: TimeAmount = .milliseconds(500), commandTimeout: TimeAmount = .milliseconds(500),
            backoff: TimeAmount = .milliseconds(100), maxBackoff: TimeAmount = .seconds(5),
            tls: NIOSSLContext? = nil, serverName: String? = nil
        ) {
            self.tls = tls
            self.serverName = serverName
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.backoff = backoff
            self.maxBackoff = maxBackoff
        }
    }

    public let configuration: Configuration
    public let loop: any EventLoop
    private var channel: (any Channel)?
    private var connecting: EventLoopFuture<any Channel>?
    private var nextAttempt = NIODeadline.uptimeNanoseconds(0)
    private var currentBackoff: TimeAmount
    private var lastFailure = ""
    private var shutDown = false

    public init(configuration: Configuration, loop: any EventLoop) {
        self.configuration = configuration
        self.loop = loop
        self.currentBackoff = configuration.backoff
    }

    /// Sends one command; its reply (an error reply included) completes the future.
    public func send(_ arguments: [String]) -> EventLoopFuture<RESPValue> {
        loop.flatSubmit {
            self.connection().flatMap { channel in self.write(arguments, on: channel) }
        }
    }

    /// Runs `script` with `EVALSHA`, falling back to `EVAL` once when the server answers `NOSCRIPT`.
    public func run(_ script: RedisScript, keys: [String], arguments: [String]) -> EventLoopFuture<RESPValue> {
        let tail = [String(keys.count)] + keys + arguments
        return send(["EVALSHA", script.sha1] + tail).flatMap { reply in
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                return self.send(["EVAL", script.source] + tail)
            }
            return self.loop.makeSucceededFuture(reply)
        }
    }

    /// Closes the connection; later commands fail with ``RedisError/shutDown``.
    public func close() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.shutDown = true
            let channel = self.channel
            self.channel = nil
            return channel?.close().recover { _ in } ?? self.loop.makeSucceededVoidFuture()
        }
    }

    // MARK: Connection management (on `loop`)

    private func connection() -> EventLoopFuture<any Channel> {
        loop.assertInEventLoop()
        if shutDown { return loop.makeFailedFuture(RedisError.shutDown) }
        if let channel, channel.isActive { return loop.makeSucceededFuture(channel) }
        if let connecting { return connecting }
        let now = NIODeadline.now()
        guard now >= nextAttempt else {
            return loop.makeFailedFuture(RedisError.unavailable("\(lastFailure); retrying in \((nextAttempt - now).nanoseconds / 1_000_000) ms"))
        }
        let target = "\(configuration.host):\(configuration.port)"
        let future = dial().flatMapErrorThrowing { error -> any Channel in
            if error is RedisError { throw error }
            throw RedisError.unavailable("cannot connect to \(target): \(error)")
        }.map { channel -> any Channel in
            self.channel = channel
            self.connecting = nil
            self.currentBackoff = self.configuration.backoff
            return channel
        }
        future.whenFailure { error in
            self.connecting = nil
            if case RedisError.unavailable(let why) = error {
                self.lastFailure = why
            } else {
                self.lastFailure = "\(error)"
            }
            // Full jitter on top of the base keeps replicas from re-dialling in step.
            let jitter = Int64.random(in: 0...(self.currentBackoff.nanoseconds / 2 + 1))
            self.nextAttempt = NIODeadline.now() + self.currentBackoff + .nanoseconds(jitter)
            self.currentBackoff = min(self.currentBackoff * 2, self.configuration.maxBackoff)
        }
        connecting = future
        return future
    }

    private func dial() -> EventLoopFuture<any Channel> {
        let configuration = self.configuration
        return ClientBootstrap(group: loop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = configuration.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: configuration.serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(RESPHandler())
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .flatMap { channel in
                self.setUp(channel).map { channel }.flatMapError { error in
                    channel.close(promise: nil)
                    return self.loop.makeFailedFuture(error)
                }
            }
    }

    /// AUTH and SELECT, pipelined, before the connection is handed out.
    private func setUp(_ channel: any Channel) -> EventLoopFuture<Void> {
        var commands: [[String]] = []
        if let password = configuration.password {
            commands.append(["AUTH"] + (configuration.username.map { [$0] } ?? []) + [password])
        }
        if configuration.database != 0 { commands.append(["SELECT", String(configuration.database)]) }
        let replies = commands.map { write($0, on: channel) }
        return EventLoopFuture.whenAllSucceed(replies, on: loop).flatMapThrowing { values in
            for value in values {
                if case .error(let message) = value { throw RedisError.refused(message) }
            }
        }
    }

    private func write(_ arguments: [String], on channel: any Channel) -> EventLoopFuture<RESPValue> {
        let promise = loop.makePromise(of: RESPValue.self)
        var buffer = channel.allocator.buffer(capacity: 64)
        RESPEncoder.encode(arguments, into: &buffer)
        let timeout = loop.scheduleTask(in: configuration.commandTimeout) {
            promise.fail(RedisError.timeout)
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        channel.writeAndFlush(RESPHandler.Command(bytes: buffer, reply: promise), promise: nil)
        return promise.futureResult
    }
}

/// Matches replies to commands in order on one connection.
final class RESPHandler: ChannelDuplexHandler {
    struct Command {
        var bytes: ByteBuffer
        var reply: EventLoopPromise<RESPValue>
    }

    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Command
    typealias OutboundOut = ByteBuffer

    private var pending = Deque<EventLoopPromise<RESPValue>>()
    private var received: ByteBuffer?
    private let parser = RESPParser()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        pending.append(command.reply)
        context.write(wrapOutboundOut(command.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if received == nil {
            received = bytes
        } else {
            // A reply still partial after a run of complete ones: drop what was read.
            if received!.readerIndex > 64 << 10 { received!.discardReadBytes() }
            received!.writeBuffer(&bytes)
        }
        do {
            while var buffer = received, let value = try parser.parse(&buffer) {
                received = buffer.readableBytes == 0 ? nil : buffer
                guard let reply = pending.popFirst() else {
                    fail(context, RedisError.malformed("reply without a command"))
                    return
                }
                reply.succeed(value)
            }
        } catch {
            fail(context, RedisError.malformed("\(error)"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failPending(RedisError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS handshake refused, a reset: callers see one error type.
        fail(context, error as? RedisError ?? RedisError.unavailable("connection failed: \(error)"))
    }

    private func fail(_ context: ChannelHandlerContext, _ error: any Error) {
        failPending(error)
        context.close(promise: nil)
    }

    private func failPending(_ error: any Error) {
        while let reply = pending.popFirst() { reply.fail(error) }
    }
}
