import NIOCore
import NIOPosix

/// A loopback port with nothing listening (bound, then closed), from 30000..<32768:
/// below the kernel's ephemeral range, where every `port: 0` listener of a test
/// running alongside lands (a dead port taken from that range could come alive), and
/// above the range test Redis servers use (``RedisServer/freePort()``). Shared by the
/// test targets since 2026-12-07: `AdminClientTests` freed a port-0 port instead, and a
/// parallel test's listener now and then took it.
public func deadPort(group: any EventLoopGroup) async throws -> Int {
    for _ in 0..<100 {
        let port = Int.random(in: 30_000..<32_768)
        guard let channel = try? await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: port).get() else { continue }
        try await channel.close()
        return port
    }
    throw RedisServer.Unavailable(description: "no free port in 30000..<32768")
}
