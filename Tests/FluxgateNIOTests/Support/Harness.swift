import FluxgateCore
import FluxgateNIO
import Logging
import NIOCore
import NIOPosix

/// A gateway on 127.0.0.1:0 in front of test upstreams, torn down by `withGateway`.
struct GatewayHarness {
    let gateway: GatewayServer
    let address: SocketAddress
    let group: any EventLoopGroup
}

/// Data-path tests see only their own requests: active probes and passive ejection are
/// off unless a test turns them on (the health tests do).
func makeConfig(upstreams: [String], _ adjust: (inout GatewayConfig) -> Void = { _ in }) throws -> GatewayConfig {
    var yaml = "listen: \"127.0.0.1:0\"\ndemo: { enabled: false }\n"
    yaml += "health_check: { enabled: false, passive: { enabled: false } }\nupstreams:\n"
    for url in upstreams { yaml += "  - url: \"\(url)\"\n" }
    var config = try ConfigLoader.load(yaml: yaml)
    adjust(&config)
    return config
}

func withGateway<T>(
    _ config: GatewayConfig, threads: Int = 1, group: any EventLoopGroup,
    _ body: (GatewayHarness) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    let gateway = try GatewayServer(config: config, group: group, logger: logger)
    let address = try await gateway.start()
    do {
        let result = try await body(GatewayHarness(gateway: gateway, address: address, group: group))
        try await gateway.stop()
        return result
    } catch {
        try await gateway.stop()
        throw error
    }
}

/// A loopback port with nothing listening (bound, then closed).
func deadPort(group: any EventLoopGroup) async throws -> Int {
    let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress!.port!
    try await channel.close()
    return port
}
