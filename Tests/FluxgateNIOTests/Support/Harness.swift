import FluxgateCore
import FluxgateNIO
import FluxgateTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A gateway on 127.0.0.1:0 in front of test upstreams, torn down by `withGateway`.
struct GatewayHarness {
    let gateway: GatewayServer
    let address: SocketAddress
    let group: any EventLoopGroup
}

extension GatewayHarness {
    /// The admin listener's `/metrics`, as ``samples(_:)``.
    func metrics() async throws -> [String: Double] {
        samples(try await OneShot.request("GET", "/metrics", to: gateway.adminAddress!, group: group).body)
    }
}

/// `name{labels} value` lines of an exposition, keyed by everything before the value.
func samples(_ text: String) -> [String: Double] {
    var result: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        result[String(line[..<space])] = value
    }
    return result
}

/// Data-path tests see only their own requests: active probes and passive ejection are
/// off unless a test turns them on (the health tests do).
func makeConfig(upstreams: [String], _ adjust: (inout GatewayConfig) -> Void = { _ in }) throws -> GatewayConfig {
    var yaml = "listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\ndemo: { enabled: false }\n"
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

/// A port whose connects hang, as an upstream host that drops SYNs: a listener with a
/// backlog of 0 that never accepts, its accept queue filled by two connections of its
/// own — the kernel then drops every further SYN, and a connect waits for its timeout.
/// With `completingConnects`, the listener's queue is left room instead: connects
/// succeed and nothing is ever read or answered (an upstream that hangs after the TCP
/// handshake, before its TLS ServerHello).
final class BlackHole {
    let port: Int
    private var descriptors: [CInt] = []

    init(completingConnects: Bool = false) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        descriptors.append(listener)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        guard bound == 0, listen(listener, completingConnects ? 64 : 0) == 0 else { throw IOError(errnoCode: errno, reason: "bind/listen") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        for _ in 0..<(completingConnects ? 0 : 2) {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard filler >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
            descriptors.append(filler)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, length) } }
        }
    }

    deinit { for descriptor in descriptors { close(descriptor) } }
}

/// Polls `condition` until it holds; records an issue naming `what` after `timeout`.
/// For state that no event reports to the test (a health flip made by a probe round, a
/// release on the gateway's loop): the condition itself is what is waited on.
func eventually(
    _ what: @autoclosure () -> String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !condition() {
        if clock.now >= deadline {
            Issue.record("timed out waiting: \(what())", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// ``eventually(_:timeout:sourceLocation:_:)`` for a condition that must await (a
/// reading taken on the gateway's event loops).
func eventuallyAsync(
    _ what: @autoclosure () -> String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !(await condition()) {
        if clock.now >= deadline {
            Issue.record("timed out waiting: \(what())", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Closes `channel` after 10 s whatever happens, so a missing answer fails the test
/// instead of hanging it; the box says whether it had to.
@discardableResult
func guardAgainstHanging(_ channel: any Channel) -> NIOLockedValueBox<Bool> {
    let fired = NIOLockedValueBox(false)
    channel.eventLoop.scheduleTask(in: .seconds(10)) {
        fired.withLockedValue { $0 = true }
        channel.close(promise: nil)
    }
    return fired
}
