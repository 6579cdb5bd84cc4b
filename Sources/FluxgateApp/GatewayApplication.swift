import FluxgateCore
import FluxgateNIO
import FluxorDemo
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// The whole product for one config: the gateway, plus the in-process demo upstreams
/// when no upstream is configured (the embedded default). The `fluxgate` command runs
/// exactly this; tests start it the same way.
public struct GatewayApplication: Sendable {
    public let gateway: GatewayServer
    public let demos: [DemoUpstreamServer]

    public init(
        config: GatewayConfig, group: any EventLoopGroup, logger: Logger, source: ConfigSource? = nil,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), applicationLog: ApplicationLogSwitch? = nil,
        commandLine: [String] = []
    ) throws {
        var demos: [DemoUpstreamServer] = []
        if config.runsEmbeddedDemo {
            for index in 0..<config.demo.instances {
                let demo = DemoUpstreamServer.Configuration(
                    config.demo, port: config.demo.endpoint(index).port, instance: DemoConfig.instanceName(index))
                demos.append(DemoUpstreamServer(configuration: demo, group: group, logger: logger))
            }
        }
        self.demos = demos
        self.gateway = try GatewayServer(
            config: config, group: group, logger: logger, source: source, registry: registry, applicationLog: applicationLog,
            commandLine: commandLine)
    }

    /// Binds every listener: demos first, so the gateway's first request finds them.
    /// `sockets`: the gateway's listening sockets when they were handed over.
    public func start(sockets: ListenerSockets = ListenerSockets()) async throws {
        for demo in demos {
            _ = try await ListenerError.naming("demo upstream \(demo.endpoint)") { try await demo.start() }
        }
        try await gateway.start(sockets: sockets)
    }

    public func stop() async throws {
        try await gateway.stop()
        for demo in demos { try await demo.stop() }
    }

    /// The services to run in a `ServiceGroup`, gateway last.
    public var services: [any Service] { demos + [gateway] }
}
