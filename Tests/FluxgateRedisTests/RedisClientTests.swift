import FluxgateRedis
import FluxgateTestSupport
import NIOCore
import NIOPosix
import Testing

/// The client against a real `redis-server` (skipped when none is installed, unless
/// `FLUXGATE_REQUIRE_REDIS=1`; see ``RedisServer``).
@Suite(.enabled(if: RedisServer.enabled), .serialized)
struct RedisClientTests {
    private func withClient(
        _ server: RedisServer, password: String? = nil, commandTimeout: TimeAmount = .seconds(10), backoff: TimeAmount = .milliseconds(50),
        _ body: (RedisClient) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = RedisClient(
            configuration: .init(
                host: "127.0.0.1", port: server.port, password: password, commandTimeout: commandTimeout, backoff: backoff,
                maxBackoff: backoff),
            loop: group.next())
        do {
            try await body(client)
            try await client.close().get()
            try await group.shutdownGracefully()
        } catch {
            try? await client.close().get()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    @Test func commandsAndReplies() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        try await withClient(server) { (client: RedisClient) async throws in
            #expect(try await client.send(["PING"]).get() == .simpleString("PONG"))
            #expect(try await client.send(["SET", "k", "value with spaces\r\n"]).get() == .simpleString("OK"))
            #expect(try await client.send(["GET", "k"]).get() == .bulkString(Array("value with spaces\r\n".utf8)))
            #expect(try await client.send(["GET", "missing"]).get() == .bulkString(nil))
            if case .error(let message) = try await client.send(["NOSUCHCOMMAND"]).get() {
                #expect(message.hasPrefix("ERR"))
            } else {
                Issue.record("an unknown command must come back as an error reply")
            }
        }
    }

    /// 2000 commands written without waiting: every reply reaches its own command.
    @Test func pipelinedRepliesMatchTheirCommands() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        try await withClient(server) { (client: RedisClient) async throws in
            let futures = (1...2000).map { _ in client.send(["INCR", "counter"]) }
            var values: [Int64] = []
            for future in futures { values.append(try await future.get().int ?? -1) }
            #expect(values == Array(1...2000))
        }
    }

    @Test func scriptsRunBySHAAndAreLoadedWhenTheServerForgotThem() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        let script = RedisScript("return {KEYS[1], ARGV[1] + 1}")
        try await withClient(server) { (client: RedisClient) async throws in
            #expect(try await client.run(script, keys: ["a"], arguments: ["41"]).get() == .array([.bulkString(Array("a".utf8)), .integer(42)]))
            #expect(try await client.send(["SCRIPT", "EXISTS", script.sha1]).get() == .array([.integer(1)]))
            _ = try await client.send(["SCRIPT", "FLUSH"]).get()
            #expect(try await client.run(script, keys: ["b"], arguments: ["1"]).get() == .array([.bulkString(Array("b".utf8)), .integer(2)]))
        }
    }

    @Test func passwordIsSentOnConnect() async throws {
        let server = try RedisServer(password: "s3cret")
        defer { server.stop() }
        try await withClient(server, password: "s3cret") { (client: RedisClient) async throws in
            #expect(try await client.send(["PING"]).get() == .simpleString("PONG"))
        }
        try await withClient(server, password: "wrong") { (client: RedisClient) async throws in
            await #expect {
                _ = try await client.send(["PING"]).get()
            } throws: { error in
                if case RedisError.refused(let message) = error { return message.contains("WRONGPASS") || message.contains("invalid") }
                return false
            }
        }
        try await withClient(server) { (client: RedisClient) async throws in
            if case .error(let message) = try await client.send(["PING"]).get() {
                #expect(message.hasPrefix("NOAUTH"))
            } else {
                Issue.record("an unauthenticated command must be refused")
            }
        }
    }

    /// A reply slower than the command timeout fails the command and drops the
    /// connection; the next command dials again and succeeds.
    @Test func slowRepliesTimeOut() async throws {
        let server = try RedisServer()
        defer { server.stop() }
        try await withClient(server, commandTimeout: .milliseconds(200)) { (client: RedisClient) async throws in
            await #expect(throws: RedisError.timeout) { _ = try await client.send(["BLPOP", "nothing", "2"]).get() }
            try await eventuallyTrue("a new connection after the timeout") {
                (try? await client.send(["PING"]).get()) == .simpleString("PONG")
            }
        }
    }

    /// The server goes away: commands fail at once (no hang), and the client is back
    /// when the server is, without being told.
    @Test func reconnectsWhenTheServerReturns() async throws {
        let server = try RedisServer()
        let port = server.port
        try await withClient(server) { (client: RedisClient) async throws in
            #expect(try await client.send(["PING"]).get() == .simpleString("PONG"))
            server.stop()
            await #expect(throws: RedisError.self) { _ = try await client.send(["PING"]).get() }
            await #expect(throws: RedisError.self) { _ = try await client.send(["PING"]).get() }
            let again = try RedisServer(port: port)
            defer { again.stop() }
            try await eventuallyTrue("PONG from the restarted server") {
                (try? await client.send(["PING"]).get()) == .simpleString("PONG")
            }
        }
    }

    /// Polls an async condition (the reconnect backoff runs on its own clock).
    private func eventuallyTrue(_ what: String, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !(await condition()) {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
