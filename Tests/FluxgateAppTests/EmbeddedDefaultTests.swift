import FluxgateApp
import FluxgateCore
import FluxgateTestSupport
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The one-command product: no upstream configured, so three demo instances start in
/// process and the gateway balances over them.
@Suite(.timeLimit(.minutes(1)))
struct EmbeddedDefaultTests {
    @Test func thirtyRequestsReachTheThreeInstancesTenEach() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        // The embedded default, moved off the fixed ports so tests can run anywhere.
        let application = try await startOnFreePorts(group: group, logger: logger)
        let address = try #require(application.gateway.localAddress)

        var counts: [String: Int] = [:]
        for _ in 0..<30 {
            // A new connection each time, so requests land on both event loops.
            let response = try await OneShot.request("GET", "/health", to: address, group: group)
            #expect(response.status == .ok)
            #expect(response.body.contains(#""status":"healthy""#))
            counts[response.instance, default: 0] += 1
        }
        #expect(counts == ["a": 10, "b": 10, "c": 10])
        try await application.stop()
        try await group.shutdownGracefully()
    }

    @Test func echoThroughTheWholeProduct() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let application = try await startOnFreePorts(group: group, logger: Logger(label: "test"))
        let address = try #require(application.gateway.localAddress)
        let response = try await OneShot.request("POST", "/api/echo", body: #"{"items":[1,2,3]}"#, to: address, group: group)
        #expect(response.status == .ok)
        #expect(response.body == #"{"echo":{"items":[1,2,3]},"message":"Echo successful"}"#)
        try await application.stop()
        try await group.shutdownGracefully()
    }

    func startOnFreePorts(group: any EventLoopGroup, logger: Logger) async throws -> GatewayApplication {
        for attempt in 0..<20 {
            var config = try ConfigLoader.load(yaml: "listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"")
            config.demo.basePort = 20_000 + Int.random(in: 0..<400) * 100 + attempt
            let application = try GatewayApplication(config: config, group: group, logger: logger)
            do {
                try await application.start()
                return application
            } catch {
                try? await application.stop()
            }
        }
        throw ChannelError.inappropriateOperationForState
    }
}

