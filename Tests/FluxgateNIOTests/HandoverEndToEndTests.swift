import FluxgateCore
import FluxgateTestSupport
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import FluxgateNIO

/// Listening sockets handed to a second gateway (what an in-place upgrade's new process
/// and systemd's socket activation receive), on real sockets: the descriptors are
/// copied with `dup`, as `posix_spawn`'s `dup2` copies them into the new process.
@Suite(.timeLimit(.minutes(1)))
struct HandoverEndToEndTests {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let gatewayGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    @Test func aGatewayOnHandedOverSocketsServesWhileTheFirstDrainsAndNoConnectionIsRefused() async throws {
        let group = self.group
        let upstream = try await TestUpstream.start(name: "a", group: group)
        let config = try makeConfig(upstreams: [upstream.url]) { $0.rateLimit.global.enabled = false }
        let first = try GatewayServer(config: config, group: gatewayGroup, logger: logger)
        let address = try await first.start()
        let admin = try #require(first.adminAddress)
        let handed = first.listeningDescriptors.map { dup($0) }
        try #require(handed.count == 2 && handed.allSatisfy { $0 >= 0 })

        // The new configuration names the same addresses; the sockets are found by them.
        var next = config
        next.listen = SocketEndpoint(host: "127.0.0.1", port: address.port!)
        next.adminListen = SocketEndpoint(host: "127.0.0.1", port: admin.port!)
        let match = GatewayServer.matchInherited(InheritedListeners(source: .upgrade(from: 1), descriptors: handed.reversed()), config: next)
        #expect(match.problems.isEmpty && match.unused.isEmpty)
        #expect(match.sockets == ListenerSockets(data: handed[0], admin: handed[1]))
        // As the upgrade does: the first stops accepting (connections wait in the queue)
        // while the second starts; one accepts at a time.
        let waiting = Task { () -> Int in
            let client = try await TestClient.connect(to: address, group: group)
            return try await client.get("/queued").status
        }
        await first.holdAccepting(true)
        let second = try GatewayServer(config: next, group: gatewayGroup, logger: logger)
        #expect(try await second.start(sockets: match.sockets).port == address.port)
        #expect(try await waiting.value == 200)

        // New connections all through the first gateway's handover, drain and stop.
        let stopped = NIOLockedValueBox(false)
        let traffic = Task {
            var (answered, failed) = (0, [String]())
            while !stopped.withLockedValue({ $0 }) || answered == 0 {
                do {
                    let client = try await TestClient.connect(to: address, group: group)
                    let status = try await client.get("/x").status
                    if status == 200 { answered += 1 } else { failed.append("status \(status)") }
                    try? await client.channel.close()
                } catch {
                    failed.append("\(error)")
                }
            }
            return (answered, failed)
        }
        await first.closeAdminListener()
        await first.drain()
        try await first.stop()
        stopped.withLockedValue { $0 = true }
        let (answered, failed) = await traffic.value
        #expect(failed.isEmpty, "connections that failed during the handover: \(failed.prefix(3))")
        #expect(answered > 0)

        // The first gateway is gone; its sockets serve on in the second.
        for _ in 0..<20 {
            let client = try await TestClient.connect(to: address, group: group)
            #expect(try await client.get("/x").status == 200)
            try await client.channel.close()
        }
        #expect(try await OneShot.request("GET", "/readyz", to: admin, group: group).body == "ready\n")
        #expect(second.listeningDescriptors == handed)
        try await second.stop()
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    @Test func socketsThatAreNotTheConfigurationsListenersAreNamed() async throws {
        var config = try makeConfig(upstreams: ["http://127.0.0.1:1"])
        config.listen = SocketEndpoint(host: "127.0.0.1", port: 1)
        config.adminListen = SocketEndpoint(host: "127.0.0.1", port: 2)
        let file = open("/dev/null", O_RDONLY | O_CLOEXEC)
        let other = try ListeningSocket.open(SocketAddress(ipAddress: "127.0.0.1", port: 0), backlog: 8)
        defer {
            close(file)
            close(other)
        }
        let port = try #require(ListeningSocket.boundAddress(other)?.port)
        #expect(ListeningSocket.boundAddress(file) == nil)

        let fromSystemd = GatewayServer.matchInherited(InheritedListeners(source: .systemd, descriptors: [file, other]), config: config)
        #expect(
            fromSystemd.problems == [
                "inherited descriptor \(file) is not a listening TCP socket",
                "inherited descriptor \(other) listens on 127.0.0.1:\(port), which is none of this configuration's listeners "
                    + "(listen 127.0.0.1:1, admin_listen 127.0.0.1:2)",
            ])
        // An upgrade whose new file moved the listener: the old socket is left unused.
        let fromUpgrade = GatewayServer.matchInherited(InheritedListeners(source: .upgrade(from: 1), descriptors: [other]), config: config)
        #expect(fromUpgrade.problems.isEmpty && fromUpgrade.unused == [other] && fromUpgrade.sockets == ListenerSockets())
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }
}
