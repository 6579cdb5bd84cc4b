import FluxgateCore
import FluxgateRedis
import FluxgateTestSupport
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

@testable import FluxgateNIO

/// `rediss://`: the client against a real `redis-server` speaking only TLS, with a
/// certificate made here; trusted through `cluster.tls_ca_file`, refused without it.
@Suite(.enabled(if: RedisServer.enabled), .serialized, .timeLimit(.minutes(1)))
struct RedisTLSTests {
    /// A client of `localhost:port` with the `rediss://` context the `cluster` section in
    /// `yaml` gives.
    static func client(_ yaml: String, port: Int, loop: any EventLoop) throws -> RedisClient {
        let cluster = try ConfigLoader.load(yaml: yaml).cluster
        return RedisClient(
            configuration: .init(
                host: "localhost", port: port, commandTimeout: .seconds(10), tls: try TLSContexts.redis(cluster), serverName: "localhost"),
            loop: loop)
    }

    @Test func theClientSpeaksTLSAndVerifiesTheServer() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-redis-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let credentials = try TLSTests.Credentials.make(in: folder, name: "localhost")
        let server = try RedisServer(tls: (credentials.certificatePath, credentials.keyPath))
        defer { server.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        func client(_ yaml: String) throws -> RedisClient { try Self.client(yaml, port: server.port, loop: group.next()) }
        let trusting = try client("cluster: { redis_url: \"rediss://localhost:\(server.port)\", tls_ca_file: \"\(credentials.certificatePath)\" }")
        #expect(try await trusting.send(["PING"]).get() == .simpleString("PONG"))
        #expect(try await trusting.run(ClusterScripts.tokens, keys: ["t"], arguments: ["10", "5", "2", "0"]).get().elements?.count == 2)
        try await trusting.close().get()

        // The system's roots do not know this certificate: no connection, and a clear error.
        let untrusting = try client("cluster: { redis_url: \"rediss://localhost:\(server.port)\" }")
        await #expect(throws: RedisError.self) { _ = try await untrusting.send(["PING"]).get() }
        try await untrusting.close().get()

        // A plain-text client gets no answer from a TLS port it could read.
        let plain = RedisClient(configuration: .init(host: "127.0.0.1", port: server.port, commandTimeout: .milliseconds(300)), loop: group.next())
        await #expect(throws: RedisError.self) { _ = try await plain.send(["PING"]).get() }
        try await plain.close().get()
        try await group.shutdownGracefully()
    }

    /// A server that asks for a client certificate (`tls-auth-clients yes`, redis-server's
    /// default once TLS is on) answers a client presenting `cluster.tls_certificate`, and
    /// refuses one presenting none.
    @Test func aServerAskingForAClientCertificateGetsOne() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-redis-mtls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let credentials = try TLSTests.Credentials.make(in: folder, name: "localhost")
        let replica = try TLSTests.Credentials.make(in: folder, name: "fluxgate-replica")
        let server = try RedisServer(tls: (credentials.certificatePath, credentials.keyPath), clientCA: replica.certificatePath)
        defer { server.stop() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        func client(_ extra: String) throws -> RedisClient {
            try Self.client(
                "cluster: { redis_url: \"rediss://localhost:\(server.port)\", tls_ca_file: \"\(credentials.certificatePath)\"\(extra) }",
                port: server.port, loop: group.next())
        }
        let presenting = try client(", tls_certificate: \"\(replica.certificatePath)\", tls_key: \"\(replica.keyPath)\"")
        #expect(try await presenting.send(["PING"]).get() == .simpleString("PONG"))
        try await presenting.close().get()
        let anonymous = try client("")
        await #expect(throws: RedisError.self) { _ = try await anonymous.send(["PING"]).get() }
        try await anonymous.close().get()
        try await group.shutdownGracefully()
    }
}
