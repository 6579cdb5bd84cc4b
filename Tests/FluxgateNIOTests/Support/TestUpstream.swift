import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A programmable upstream on a loopback port that records what it received.
///
/// The request path chooses the behaviour:
/// - `/hold`: never answers (for upstream timeouts);
/// - `/garbage`: answers bytes that are not HTTP;
/// - `/close`: closes the connection without answering;
/// - `/status/N`: answers status N with no body (204, 304 …) or a small body;
/// - `/chunked`: answers a chunked body of three parts;
/// - `/stream?bytes=N`: answers N pattern bytes with content-length;
/// - `/hash`: answers the byte count and FNV-1a hash of the request body;
/// - `/health`: 200, 503 or no answer at all, as ``setHealth(_:)`` says;
/// - `/fail-on/<name>`: 503 from the upstream called `<name>`, 200 from the others;
/// - `/hold-on/<name>`: no answer from the upstream called `<name>`, 200 from the others;
/// - `/gate-on/<name>`: the upstream called `<name>` answers 200 once ``openGate()`` is
///   called (at once after it), the others at once;
/// - `/hold-or-gate/<name>`: no answer from the upstream called `<name>` until ``crash()``
///   cuts it off; the others answer 200 once ``openGate()`` is called;
/// - `/early`: 200 at once, before the request body;
/// - `/raw/<name>?ragged` (an HTTPS upstream): the canned answer, then a TCP close with
///   no TLS close_notify, as Python's `ssl` sockets and many HTTP/1.0 servers close;
/// - anything else: 200 with `{"instance":"<name>"}`.
final class TestUpstream: Sendable {
    struct Received: Sendable {
        var head: HTTPRequestHead
        var bodyBytes: Int
        var bodyHash: UInt64
    }

    let name: String
    let channel: any Channel
    private let state = NIOLockedValueBox(State())
    private struct State {
        var gate: [EventLoopPromise<Void>]? = []
        var holding: [any Channel] = []
        var received: [Received] = []
        var health = Health.healthy
        var raw = ""
    }

    /// Every byte received on every connection, as text, in arrival order.
    var raw: String { state.withLockedValue { $0.raw } }
    /// Keeps the first MiB: enough for every hostile-input check, cheap for bulk transfers.
    fileprivate func recordRaw(_ buffer: ByteBuffer) {
        state.withLockedValue { state in
            guard state.raw.utf8.count < 1 << 20 else { return }
            state.raw += String(buffer: buffer)
        }
    }

    enum Health: Sendable {
        case healthy, failing, hanging
    }

    /// `/gate-on/<name>` requests held here are answered, and later ones at once.
    func openGate() {
        let held = state.withLockedValue { state in
            defer { state.gate = nil }
            return state.gate ?? []
        }
        for promise in held { promise.succeed() }
    }

    /// A crash: the listener closes and so does every connection holding a
    /// `/hold-or-gate/` request here, unanswered.
    func crash() async throws {
        try await channel.close()
        let holding = state.withLockedValue { $0.holding }
        for connection in holding { try? await connection.close() }
    }

    fileprivate func hold(_ connection: any Channel) { state.withLockedValue { $0.holding.append(connection) } }

    /// Answers `/gate-on/` at once when the gate is open, else when it opens.
    fileprivate func throughGate(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let held = state.withLockedValue { state in
            guard state.gate != nil else { return false }
            state.gate!.append(promise)
            return true
        }
        if !held { promise.succeed() }
        return promise.futureResult
    }

    /// What `/health` answers from now on.
    func setHealth(_ health: Health) { state.withLockedValue { $0.health = health } }
    fileprivate var health: Health { state.withLockedValue { $0.health } }
    /// Requests with `path` received so far.
    func count(_ path: String) -> Int { received.filter { $0.head.uri == path }.count }

    var address: SocketAddress { channel.localAddress! }
    var port: Int { address.port! }
    var url: String { "http://127.0.0.1:\(port)" }
    var received: [Received] { state.withLockedValue { $0.received } }
    var acceptedConnections: Int { accepted.value }
    var closedConnections: Int { closed.value }
    fileprivate let accepted = Counter()
    fileprivate let closed = Counter()
    fileprivate let heads = Counter()
    private let concurrency = NIOLockedValueBox((current: 0, max: 0))
    /// The most requests this upstream held at once on `/slow`.
    var maxConcurrency: Int { concurrency.withLockedValue { $0.max } }

    fileprivate func slowStarted() {
        concurrency.withLockedValue {
            $0.current += 1
            $0.max = Swift.max($0.max, $0.current)
        }
    }

    fileprivate func slowFinished() { concurrency.withLockedValue { $0.current -= 1 } }

    /// - Parameter tls: serve HTTPS with this context.
    static func start(name: String, group: any EventLoopGroup, tls: NIOSSLContext? = nil) async throws -> TestUpstream {
        let box = NIOLockedValueBox<TestUpstream?>(nil)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upstream = box.withLockedValue { $0! }
                    upstream.accepted.increment()
                    channel.closeFuture.whenComplete { _ in upstream.closed.increment() }
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(RaggedClose())
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.addHandler(RawRecorder(upstream: upstream))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(upstream: upstream))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let upstream = TestUpstream(name: name, channel: channel)
        box.withLockedValue { $0 = upstream }
        return upstream
    }

    /// First in an HTTPS upstream's pipeline, below the TLS handler: a close from its
    /// context reaches the socket without passing TLS, so no close_notify is sent.
    private final class RaggedClose: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = NIOAny
    }

    private init(name: String, channel: any Channel) {
        self.name = name
        self.channel = channel
    }

    func stop() async throws {
        do {
            try await channel.close()
        } catch ChannelError.alreadyClosed {}  // crashed already
    }

    /// Completes once `count` accepted connections have closed in total.
    func waitForClosedConnections(_ count: Int) async throws {
        try await closed.wait(for: count, on: channel.eventLoop)
    }

    /// Completes once `count` connections have been accepted in total.
    func waitForAcceptedConnections(_ count: Int) async throws {
        try await accepted.wait(for: count, on: channel.eventLoop)
    }

    /// Request heads arrived so far.
    var requestHeadCount: Int { heads.value }

    /// Completes once `count` request heads have arrived in total.
    func waitForRequestHeads(_ count: Int) async throws {
        try await heads.wait(for: count, on: channel.eventLoop)
    }

    /// Completes once a streamed response found the socket full (the gateway stopped reading).
    func waitUntilBlocked() async throws {
        try await blockedWrites.wait(for: 1, on: channel.eventLoop)
    }

    fileprivate let blockedWrites = Counter()

    fileprivate func blocked() {
        blockedWrites.increment()
    }


    fileprivate func record(_ received: Received) {
        state.withLockedValue { $0.received.append(received) }
    }

    private final class RawRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let upstream: TestUpstream
        init(upstream: TestUpstream) { self.upstream = upstream }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            upstream.recordRaw(unwrapInboundIn(data))
            context.fireChannelRead(data)
        }
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let upstream: TestUpstream
        var head: HTTPRequestHead?
        var bodyBytes = 0
        var hash = FNV1a()
        var streamRemaining = 0
        var streamContext: ChannelHandlerContext?

        init(upstream: TestUpstream) { self.upstream = upstream }

        static let rawResponses: [String: String] = [
            "interim": "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
            "smuggle": "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            "extra": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhiEXTRA",
            "badchunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "badhead": "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
            "untilclose": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstream until close",
            "upgrade": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            // A lenient server's bare LF line endings; the connection stays open.
            "barelf": "HTTP/1.1 200 OK\nConnection: keep-alive\nContent-Length: 2\n\nok",
            "nocontent": "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
            // 10 of the 100 bytes announced, then the close.
            "shortbody": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        ]

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                upstream.heads.increment()
                bodyBytes = 0
                hash = FNV1a()
                if head.uri == "/early" {
                    // Answers before the body arrived (as an app refusing an upload does).
                    send(.ok, body: "early", context: context)
                }
            case .body(let buffer):
                bodyBytes += buffer.readableBytes
                buffer.withUnsafeReadableBytes { hash.add($0) }
            case .end:
                guard let head else { return }
                upstream.record(.init(head: head, bodyBytes: bodyBytes, bodyHash: hash.value))
                respond(to: head, context: context)
            }
        }

        func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
            let path = String(head.uri.split(separator: "?").first ?? "/")
            switch path {
            case "/hold":
                return
            case "/health":
                switch upstream.health {
                case .healthy: send(.ok, body: #"{"status":"healthy"}"#, context: context)
                case .failing: send(.serviceUnavailable, body: #"{"status":"failing"}"#, context: context)
                case .hanging: break
                }
                return
            case let holdOn where holdOn.hasPrefix("/hold-on/"):
                if holdOn.dropFirst("/hold-on/".count) == upstream.name { return }
                send(.ok, body: #"{"instance":"\#(upstream.name)"}"#, context: context)
                return
            case let path where path.hasPrefix("/hold-or-gate/"):
                guard path.dropFirst("/hold-or-gate/".count) != upstream.name else {
                    upstream.hold(context.channel)
                    return
                }
                answerThroughGate(body: #"{"instance":"\#(upstream.name)"}"#, context: context)
                return
            case let gated where gated.hasPrefix("/gate-on/"):
                let body = #"{"instance":"\#(upstream.name)"}"#
                guard gated.dropFirst("/gate-on/".count) == upstream.name else {
                    send(.ok, body: body, context: context)
                    return
                }
                answerThroughGate(body: body, context: context)
                return
            case let failOn where failOn.hasPrefix("/fail-on/"):
                let failing = failOn.dropFirst("/fail-on/".count).split(separator: ",").contains { $0 == upstream.name }
                send(failing ? .serviceUnavailable : .ok, body: #"{"instance":"\#(upstream.name)"}"#, context: context)
                return
            case "/garbage":
                // Below the HTTP encoder: write raw bytes from the encoder's own context.
                if let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) {
                    encoder.writeAndFlush(NIOAny(ByteBuffer(string: "NOT HTTP AT ALL\r\n\r\n")), promise: nil)
                }
                return
            case let raw where raw.hasPrefix("/raw/"):
                // Canned bytes below the HTTP encoder, for framing edge cases.
                guard let text = Self.rawResponses[String(raw.dropFirst(5))],
                    let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
                else { return }
                if head.uri.hasSuffix("?ragged"), let below = try? context.pipeline.syncOperations.context(handlerType: RaggedClose.self) {
                    // Closed below the TLS handler once the bytes are out: no close_notify.
                    let bound = NIOLoopBound(below, eventLoop: context.eventLoop)
                    encoder.writeAndFlush(NIOAny(ByteBuffer(string: text))).whenComplete { _ in bound.value.close(promise: nil) }
                    return
                }
                encoder.writeAndFlush(NIOAny(ByteBuffer(string: text)), promise: nil)
                if !text.contains("keep-alive") { encoder.close(promise: nil) }
                return
            case "/close":
                context.close(promise: nil)
                return
            case "/head-then-extra":
                // A HEAD answer announcing 40 bytes, then, 50 ms later, a whole response
                // nobody asked for (an upstream that desynchronises its connection).
                guard let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) else { return }
                encoder.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")), promise: nil)
                let bound = NIOLoopBound(encoder, eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .milliseconds(50)) {
                    bound.value.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")), promise: nil)
                }
                return
            case "/stall-body":
                // A head and part of the body, then nothing (the connection stays open).
                guard let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) else { return }
                encoder.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")), promise: nil)
                return
            case "/chunked":
                var headers = HTTPHeaders([("transfer-encoding", "chunked")])
                headers.add(name: "x-upstream-instance", value: upstream.name)
                context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                for part in ["one,", "two,", "three"] {
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: part)))), promise: nil)
                }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            case "/slow":
                // Holds the answer for ?ms=N milliseconds and records concurrency.
                let delay = Int64(head.uri.split(separator: "=").last ?? "20") ?? 20
                upstream.slowStarted()
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .milliseconds(delay)) {
                    let (handler, context) = bound.value
                    handler.upstream.slowFinished()
                    handler.send(.ok, body: #"{"slow":true}"#, context: context)
                }
                return
            case "/hash":
                send(.ok, body: "\(bodyBytes) \(hash.value)", context: context)
                return
            case "/stream":
                let bytes = Int(head.uri.split(separator: "=").last ?? "0") ?? 0
                let headers = HTTPHeaders([("content-length", "\(bytes)"), ("x-upstream-instance", upstream.name)])
                context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                streamRemaining = bytes
                streamContext = context
                pump(context: context)
                return
            default:
                break
            }
            if path.hasPrefix("/status/"), let code = Int(path.dropFirst("/status/".count)) {
                let status = HTTPResponseStatus(statusCode: code)
                let bodyless = code == 204 || code == 304 || head.method == .HEAD
                var headers = HTTPHeaders([("x-upstream-instance", upstream.name)])
                if code != 204 { headers.add(name: "content-length", value: bodyless && code == 304 ? "0" : "2") }
                if head.method == .HEAD { headers.replaceOrAdd(name: "content-length", value: "2") }
                context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: status, headers: headers))), promise: nil)
                if !bodyless { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "ok")))), promise: nil) }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            send(.ok, body: #"{"instance":"\#(upstream.name)"}"#, context: context)
        }

        /// 200 with `body` once ``TestUpstream/openGate()`` is called (at once after it).
        func answerThroughGate(body: String, context: ChannelHandlerContext) {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            upstream.throughGate(on: context.eventLoop).whenSuccess { _ in
                bound.value.0.send(.ok, body: body, context: bound.value.1)
            }
        }

        func send(_ status: HTTPResponseStatus, body: String, context: ChannelHandlerContext) {
            let headers = HTTPHeaders([
                ("content-length", "\(body.utf8.count)"), ("x-upstream-instance", upstream.name),
                ("connection", "keep-alive, x-upstream-private"), ("x-upstream-private", "secret"), ("keep-alive", "timeout=5"),
            ])
            context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        /// Writes the streamed body while the socket takes it; pauses when it is full.
        var pumping = false

        func pump(context: ChannelHandlerContext) {
            // Writes can change writability synchronously; don't re-enter.
            guard !pumping, streamContext != nil else { return }
            pumping = true
            defer { pumping = false }
            while streamRemaining > 0 && context.channel.isWritable {
                let size = min(65_536, streamRemaining)
                streamRemaining -= size
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(Pattern.buffer(size)))), promise: nil)
            }
            if streamRemaining == 0 {
                streamContext = nil
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                upstream.blocked()
            }
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable, streamContext != nil { pump(context: context) }
            context.fireChannelWritabilityChanged()
        }
    }
}

/// FNV-1a 64-bit: a cheap content fingerprint for checking that streamed bytes
/// arrived intact (not a security hash).
struct FNV1a: Sendable {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01b3
        }
    }
}

/// A repeating byte pattern whose hash is predictable at any length.
enum Pattern {
    static func buffer(_ size: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { pointer in
            for index in 0..<size { pointer[index] = UInt8(truncatingIfNeeded: index % 251) }
            return size
        }
        return buffer
    }

    static func hash(totalBytes: Int, chunk: Int = 65_536) -> UInt64 {
        var hash = FNV1a()
        var remaining = totalBytes
        while remaining > 0 {
            let size = min(chunk, remaining)
            remaining -= size
            Pattern.buffer(size).withUnsafeReadableBytes { hash.add($0) }
        }
        return hash.value
    }
}

/// A count that tests can wait on: `wait(for: n)` completes once it reaches n.
final class Counter: Sendable {
    private let state = NIOLockedValueBox<(value: Int, waiters: [(Int, EventLoopPromise<Void>)])>((0, []))

    var value: Int { state.withLockedValue { $0.value } }

    func increment() {
        let ready = state.withLockedValue { state -> [EventLoopPromise<Void>] in
            state.value += 1
            let value = state.value
            let ready = state.waiters.filter { $0.0 <= value }.map(\.1)
            state.waiters.removeAll { $0.0 <= value }
            return ready
        }
        ready.forEach { $0.succeed() }
    }

    struct TimedOut: Error, CustomStringConvertible {
        var count: Int
        var description: String { "timed out waiting for the count to reach \(count)" }
    }

    /// Waits until the count reaches `count`; fails after `timeout` instead of hanging the suite.
    func wait(for count: Int, on eventLoop: any EventLoop, timeout: TimeAmount = .seconds(30)) async throws {
        let promise = eventLoop.makePromise(of: Void.self)
        let done = state.withLockedValue { state -> Bool in
            if state.value >= count { return true }
            state.waiters.append((count, promise))
            return false
        }
        if done { promise.succeed() }
        let timer = eventLoop.scheduleTask(in: timeout) { promise.fail(TimedOut(count: count)) }
        defer { timer.cancel() }
        try await promise.futureResult.get()
    }
}
