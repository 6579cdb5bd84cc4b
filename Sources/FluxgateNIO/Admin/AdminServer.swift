import Foundation
import FluxgateCore
import FluxgateNIOSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener (`admin_listen`, default 127.0.0.1:9090): its own port, never
/// the data port, never admission-controlled, so it answers while the data path sheds.
///
/// - `GET /metrics`: Prometheus text exposition (``GatewayObservability``)
/// - `GET /stats`: JSON snapshot (in-flight, queue, S, C, utilization, upstreams,
///   sheds by reason, recent latency percentiles)
/// - `GET /config`: the configuration in force, as YAML (secrets redacted)
/// - `GET /healthz`: 200 while the process runs
/// - `GET /readyz`: 200, or 503 at utilization ≥ 0.9, with no upstream ready, or draining
/// - `POST /reload`: reloads the config file (what SIGHUP does), answers with the result
///
/// Bounded like the data port, because in Kubernetes it listens on the pod network
/// (probes and Prometheus come from outside the pod) and its descriptors are the
/// process's: a request — head and any body — must be complete within
/// ``Limits/headerTimeout`` (10 s, else 408 and close), a body is at most
/// ``Limits/maxDiscardedBodyBytes`` (else 413 and close), an idle keep-alive connection closes after
/// ``Limits/idleTimeout`` (60 s), one that takes none of its answers after
/// ``Limits/sendTimeout`` (30 s), and at most ``Limits/maxConnections`` (64) are open —
/// at the cap a new connection closes the one idle longest (``IdleEvictingConnectionCap``;
/// until 2026-12-07 it was answered 503 whatever the others were doing, so 64 idle
/// keep-alive connections kept every probe out), and only when the gateway is working
/// on an answer for all 64 is it answered 503 and closed. Before these, a client that sent half a head held its
/// connection for ever (found by trying it), so enough of them could take every
/// descriptor from the data path.
final class AdminServer: Sendable {
    struct Limits: Sendable {
        var headerTimeout: Duration = .seconds(10)
        var idleTimeout: Duration = .seconds(60)
        /// A client that takes none of the answers written to it (a large `/metrics`,
        /// or pipelined requests it does not read) is closed after this.
        var sendTimeout: Duration = .seconds(30)
        var maxConnections = 64
        /// How long a connection closed for unparseable input (NIOHTTP1's 400) keeps
        /// reading and discarding what its client still sends (``LingeringCloseHandler``),
        /// so the unread rest does not turn the 400 into a reset.
        var lingerTimeout: Duration = .seconds(5)
        /// No endpoint takes a request body: one up to this many bytes is read and thrown
        /// away (a `curl -X POST -d '{}' …/reload` still works), a larger one is answered
        /// 413 and the connection closed.
        var maxDiscardedBodyBytes = 65_536
    }

    typealias Reload = @Sendable () async -> ReloadOutcome

    /// The answer to a connection beyond ``Limits/maxConnections``.
    static func tooManyConnections() -> ByteBuffer {
        let body = "too many admin connections; try again later\n"
        return ByteBuffer(
            string: "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
                + "content-length: \(body.utf8.count)\r\nretry-after: 1\r\ndate: \(date())\r\nconnection: close\r\n\r\n" + body)
    }

    /// The answer to a head that did not arrive in time.
    static func requestTimeout() -> ByteBuffer {
        ByteBuffer(string: "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\ndate: \(date())\r\nconnection: close\r\n\r\n")
    }

    /// The `Date` value for now (RFC 9110 §6.6.1; the admin listener's answers are few,
    /// so each formats its own).
    static func date() -> String { HTTPDate.string(epochSeconds: Int64(time(nil))) }

    let observability: GatewayObservability
    let reload: Reload
    let logger: Logger
    /// The keys the command line set (`listen (serve --listen)`), for `GET /config`'s header.
    let commandLine: [String]

    init(observability: GatewayObservability, reload: @escaping Reload, logger: Logger, commandLine: [String] = []) {
        self.observability = observability
        self.reload = reload
        self.logger = logger
        self.commandLine = commandLine
    }

    /// Listens on `endpoint` (or on `socket`, an inherited listening socket); returns the
    /// channel and its descriptor.
    func bind(
        _ endpoint: SocketEndpoint, group: any EventLoopGroup, limits: Limits = Limits(), family: AddressFamilyPreference = .v4Preferred,
        socket: CInt? = nil
    ) async throws -> (channel: any Channel, socket: CInt) {
        let descriptor = try socket
            ?? ListeningSocket.open(try AddressLookup.address(endpoint.host, port: endpoint.port, family: family), backlog: 128)
        let connections = NIOLockedValueBox(OpenConnections(cap: IdleEvictingConnectionCap(capacity: limits.maxConnections)))
        let channel = try await ServerBootstrap(group: group)
            .pausingAcceptsWhenOutOfDescriptors()
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let id = ObjectIdentifier(channel)
                    switch connections.withLockedValue({ $0.accept(channel, id: id, now: .current) }) {
                    case .refused(let linger):
                        self.observability.runtime.adminConnectionsRefused.add(1, ordering: .relaxed)
                        // The 503 waits for the request (a reset would lose it), as the data
                        // port's refusals do; at most `maxConnections` wait at once.
                        channel.closeFuture.whenComplete { _ in connections.withLockedValue { $0.lingeringRefusals -= 1 } }
                        try channel.pipeline.syncOperations.addHandler(
                            RefuseConnectionHandler(
                                answer: Self.tooManyConnections(),
                                lingerTimeout: linger ? .nanoseconds(limits.lingerTimeout.nanosecondsClamped) : nil))
                        return
                    case .admitted(let making, let notice):
                        if let making {
                            making.close(promise: nil)  // the connection idle longest makes room
                            self.observability.runtime.adminConnectionsEvicted.add(1, ordering: .relaxed)
                        }
                        if let notice {
                            self.logger.notice(
                                "admin listener at its connection cap: closing the connections idle longest to accept new ones",
                                metadata: ["cap": "\(limits.maxConnections)", "closed_since_last_notice": "\(notice)"])
                        }
                    }
                    channel.closeFuture.whenComplete { _ in
                        connections.withLockedValue { open in
                            open.cap.closed(id)
                            open.channels[id] = nil
                        }
                    }
                    // Closes for unparseable input linger (``AdminHandler/errorCaught``).
                    try channel.pipeline.syncOperations.addHandler(
                        LingeringCloseHandler(timeout: .nanoseconds(limits.lingerTimeout.nanosecondsClamped), closesLinger: true))
                    // The data port's client timeouts, in front of NIOHTTP1's decoder; a
                    // timer heap of its own per connection (admin connections are few).
                    let timeouts = ClientTimeoutHandler(
                        headerTimeout: limits.headerTimeout, idleTimeout: limits.idleTimeout, sendTimeout: limits.sendTimeout,
                        rejection: Self.requestTimeout,
                        timers: LoopTimers(eventLoop: channel.eventLoop))
                    try channel.pipeline.syncOperations.addHandler(timeouts)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        AdminHandler(
                            server: self, timeouts: timeouts, maxBodyBytes: limits.maxDiscardedBodyBytes,
                            answering: { connections.withLockedValue { $0.cap.answering(id) } },
                            answered: { connections.withLockedValue { $0.cap.answered(id, now: .current) } }))
                }
            }
            .withBoundSocket(descriptor)
            .get()
        return (channel, descriptor)
    }

    /// The admin listener's open connections: the cap's bookkeeping, and the channels it
    /// may close to make room.
    struct OpenConnections {
        var cap: IdleEvictingConnectionCap<ObjectIdentifier>
        var channels: [ObjectIdentifier: any Channel] = [:]
        /// Refused connections waiting for their request to answer it.
        var lingeringRefusals = 0
        /// Connections closed to make room since the last notice, which comes at most
        /// once a second.
        var madeRoom = 0
        let roomNotice = LogThrottle()

        enum Accepted {
            /// Open; `making` (the connection idle longest) is to be closed to make room,
            /// and `notice` is the count closed so since the last log notice when one is due
            /// (at most once a second, as nginx says "worker_connections are not enough,
            /// reusing connections").
            case admitted(making: (any Channel)?, notice: Int?)
            /// Answered 503; `linger`: it waits for the request first.
            case refused(linger: Bool)
        }

        mutating func accept(_ channel: any Channel, id: ObjectIdentifier, now: MonotonicTime) -> Accepted {
            switch cap.open(id, now: now) {
            case .admitted:
                channels[id] = channel
                return .admitted(making: nil, notice: nil)
            case .admittedClosing(let longest):
                channels[id] = channel
                madeRoom += 1
                var notice: Int?
                if roomNotice.allow(now: now) {
                    notice = madeRoom
                    madeRoom = 0
                }
                return .admitted(making: channels.removeValue(forKey: longest), notice: notice)
            case .refused:
                lingeringRefusals += 1
                return .refused(linger: lingeringRefusals <= cap.capacity)
            }
        }
    }

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]
        var headers: [(String, String)] = []

        static func text(_ status: HTTPResponseStatus, _ text: String) -> Response {
            Response(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
        }

        static func json<T: Encodable>(_ status: HTTPResponseStatus, _ value: T) -> Response {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
            return Response(status: status, contentType: "application/json", body: Array(data) + [UInt8(ascii: "\n")])
        }
    }

    static let paths = ["/metrics", "/stats", "/config", "/healthz", "/readyz", "/reload"]

    /// `GET /config`: the configuration in force as a config file (``ConfigDocument``),
    /// secrets redacted — as the loader built it at start or at the last reload that
    /// took, environment overrides and `--listen` included.
    static func configDocument(_ settings: GatewaySettings, commandLine: [String] = []) -> String {
        let document = ConfigDocument(settings.config)
        return document.yaml(
            header: document.header(
                "configuration in force: version \(settings.version) (1 at start, +1 per reload that took)",
                environment: ProcessInfo.processInfo.environment, commandLine: commandLine))
    }

    /// Whether `/readyz` with this query counts utilization: without one, yes (at ≥ 0.9
    /// not ready, the product's rule, docs/OPERATIONS.md — a load balancer in front of
    /// independent gateways moves traffic off a saturated one); `ignore=utilization`,
    /// no — ready unless draining or with no upstream in rotation, for a Kubernetes
    /// readiness probe: replicas that share one overload (cluster mode shares `S`) reach
    /// 0.9 together, every one would leave the Service at once, and clients would meet
    /// refused connections instead of the gateways' fast 503s. Anything else: nil (a 400 naming the one query taken).
    static func readinessCountsUtilization(_ query: Substring?) -> Bool? {
        guard let query, !query.isEmpty else { return true }
        return query == "ignore=utilization" ? false : nil
    }

    func respond(method: HTTPMethod, path: String, query: Substring? = nil) async -> Response {
        switch (method, path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return .text(.ok, "ok\n")
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            guard let counting = Self.readinessCountsUtilization(query) else {
                return .text(.badRequest, "/readyz takes ignore=utilization (ready unless draining or with no upstream in rotation) or nothing\n")
            }
            if let reason = observability.notReadyReason(countingUtilization: counting) {
                return .text(.serviceUnavailable, "not ready: \(reason)\n")
            }
            return .text(.ok, "ready\n")
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            return Response(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: await observability.metricsText())
        case (.GET, "/stats"), (.HEAD, "/stats"):
            return .json(.ok, StatsDocument(await observability.read()))
        case (.GET, "/config"), (.HEAD, "/config"):
            return Response(status: .ok, contentType: "application/yaml", body: Array(Self.configDocument(observability.runtime.settings, commandLine: commandLine).utf8))
        case (.POST, "/reload"):
            let outcome = await reload()
            return .json(outcome.succeeded ? .ok : .unprocessableEntity, outcome)
        case (_, let path) where Self.paths.contains(path):
            let allow = path == "/reload" ? "POST" : "GET, HEAD"
            var response = Response.text(.methodNotAllowed, "\(path) allows \(allow)\n")
            response.headers = [("Allow", allow)]
            return response
        default:
            return .text(.notFound, "not found; admin endpoints: \(Self.paths.joined(separator: ", "))\n")
        }
    }
}
