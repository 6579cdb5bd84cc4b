import Foundation
import FluxgateCore
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
/// more are answered 503 and closed at accept, as the data port answers connections
/// beyond `limits.max_connections`. Before these, a client that sent half a head held its
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

    init(observability: GatewayObservability, reload: @escaping Reload, logger: Logger) {
        self.observability = observability
        self.reload = reload
        self.logger = logger
    }

    /// Listens on `endpoint` (or on `socket`, an inherited listening socket); returns the
    /// channel and its descriptor.
    func bind(
        _ endpoint: SocketEndpoint, group: any EventLoopGroup, limits: Limits = Limits(), family: AddressFamilyPreference = .v4Preferred,
        socket: CInt? = nil
    ) async throws -> (channel: any Channel, socket: CInt) {
        let descriptor = try socket
            ?? ListeningSocket.open(try AddressLookup.address(endpoint.host, port: endpoint.port, family: family), backlog: 128)
        let open = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: group)
            .pausingAcceptsWhenOutOfDescriptors()
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let admitted = open.withLockedValue { count in
                        guard count < limits.maxConnections else { return false }
                        count += 1
                        return true
                    }
                    guard admitted else {
                        try channel.pipeline.syncOperations.addHandler(RefuseConnectionHandler(answer: Self.tooManyConnections()))
                        return
                    }
                    channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
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
                        AdminHandler(server: self, timeouts: timeouts, maxBodyBytes: limits.maxDiscardedBodyBytes))
                }
            }
            .withBoundSocket(descriptor)
            .get()
        return (channel, descriptor)
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

    static let paths = ["/metrics", "/stats", "/healthz", "/readyz", "/reload"]

    func respond(method: HTTPMethod, path: String) async -> Response {
        switch (method, path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return .text(.ok, "ok\n")
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            if let reason = observability.notReadyReason() { return .text(.serviceUnavailable, "not ready: \(reason)\n") }
            return .text(.ok, "ready\n")
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            return Response(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: await observability.metricsText())
        case (.GET, "/stats"), (.HEAD, "/stats"):
            return .json(.ok, StatsDocument(await observability.read()))
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

/// The result of a reload, as `POST /reload` reports it and the log records it.
public struct ReloadOutcome: Sendable, Encodable {
    public var result: String
    /// The configuration version in force afterwards.
    public var version: Int
    public var errors: [String]
    public var changes: [String]

    public var succeeded: Bool { result == "success" }
}

/// One admin connection: requests answered in order (NIOHTTP1's server pipeline
/// handler holds pipelined ones back, and stops reading, until each response ends).
/// A request whose turn comes while the client has not taken the earlier answers (the
/// channel past its high watermark) waits for it to take them: a client pipelining
/// `GET /metrics` without reading took the gateway to 234 MB from one connection.
private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: AdminServer
    private let timeouts: ClientTimeoutHandler
    private let maxBodyBytes: Int
    private var head: HTTPRequestHead?
    /// The body bytes of the current request so far (read and thrown away).
    private var bodyBytes = 0
    /// A 413 was written: the connection is closing, nothing more is answered.
    private var refused = false
    /// A complete request held until the client takes the answers before it.
    private var waiting: HTTPRequestHead?

    init(server: AdminServer, timeouts: ClientTimeoutHandler, maxBodyBytes: Int) {
        self.server = server
        self.timeouts = timeouts
        self.maxBodyBytes = maxBodyBytes
    }

    /// The header timeout runs until the request's end, not its head's: no endpoint takes
    /// a body, so one is read and thrown away only while the whole request is inside the
    /// timeout and the size. Until 2026-12-07 the timeout stopped at the head, so a client
    /// that declared `Content-Length: 1000000000000` and sent a byte every 5 s held its
    /// connection for ever (found by trying it) — 64 of them, the cap, would have held
    /// every admin connection, `/healthz` and Prometheus's scrapes included.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            bodyBytes = 0
            if let declared = head.headers.first(name: "content-length").flatMap({ Int($0) }), declared > maxBodyBytes {
                refuseBody(head, context: context)
            }
        case .body(let part):
            bodyBytes += part.readableBytes
            if bodyBytes > maxBodyBytes, let head { refuseBody(head, context: context) }
        case .end:
            guard let head else { return }
            self.head = nil
            timeouts.requestHeadReceived()
            guard context.channel.isWritable else {
                waiting = head
                return
            }
            answer(head, context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let head = waiting.take() { answer(head, context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Unparseable input: NIOHTTP1's error handler has written a 400 with
    /// `Connection: close`, but nothing closed the connection — until 2026-12-06 it stayed
    /// open until the header timeout, which then wrote a 408 after that 400 (found by
    /// sending a TLS hello to the port). The close lingers (``LingeringCloseHandler``).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        let promise = context.eventLoop.makePromise(of: AdminServer.Response.self)
        let server = self.server
        promise.completeWithTask { await server.respond(method: head.method, path: path) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        promise.futureResult.whenSuccess { response in
            let (handler, context) = bound.value
            handler.write(response, head: head, context: context)
        }
    }

    /// 413 and close (lingering: the rest of the body is read and dropped for a while,
    /// so the answer is not lost to a reset).
    private func refuseBody(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        refused = true
        let response = AdminServer.Response.text(
            .payloadTooLarge, "admin endpoints take no request body (at most \(maxBodyBytes) bytes are read and ignored)\n")
        write(response, head: head, close: true, context: context)
    }

    private func write(_ response: AdminServer.Response, head: HTTPRequestHead, close: Bool = false, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: "\(response.body.count)")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Date", value: AdminServer.date())
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let keepAlive = head.isKeepAlive && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keepAlive {
            timeouts.responseCompleted(now: MonotonicTime(context.eventLoop.now))
        } else {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

/// `/stats` as JSON.
struct StatsDocument: Encodable {
    struct Admission: Encodable {
        var in_flight: Int
        var queued: Int
        var slots: Int
        var capacity: Int
        var queue_limit: Int
        var queue_standing: Bool
        var utilization: Double
        var target_utilization: Double
        var ready: Bool
        var not_ready_reason: String?
        var dry_run: Bool
    }
    struct Upstream: Encodable {
        var name: String
        var url: String
        /// The address connected to (one of the URL host's, ``UpstreamMembers``).
        var address: String
        var state: String
        var ready: Bool
        var in_flight: Int
        var ejections: Int
        var ejections_overflow: Int
        var flips_up: Int
        var flips_down: Int
        /// Failed exchanges by kind (`connect`, `timeout`, `reset`, `5xx`, `malformed`).
        var failures: [String: Int]
        var weight: Int
        var max_concurrency: Int
    }
    struct Requests: Encodable {
        var total: Int
        var proxied: Int
        var shed: Int
        var gateway_answer: Int
        var cut_off: Int
        var client_gone: Int
        var retries: Int
        var retry_budget_exhausted: Int
        /// 400/408/431 before a complete head (not in `total`).
        var refused_before_head: Int
        /// Exchanges ended by a timeout, by phase.
        var timeouts: [String: Int]
    }
    struct Latency: Encodable {
        var window_s: String
        var count: UInt64
        var p50_ms: Double
        var p90_ms: Double
        var p95_ms: Double
        var p99_ms: Double
        var p999_ms: Double
        var max_ms: Double
    }
    /// Request bodies spooled to disk before admission (limits.request_spool_bytes).
    struct RequestSpool: Encodable {
        var spooled: Int
        /// The budget could not take them: they streamed after admission.
        var budget_refused: Int
        var reserved_bytes: Int
        var limit_bytes: Int
    }

    struct Connections: Encodable {
        /// Open client connections, parked ones included.
        var client: Int
        /// Of those, parked (timeouts.park_after).
        var client_parked: Int
        var client_accepted: Int
        var upstream_open: Int
        var upstream_idle: Int
        var upstream_waiting: Int
        /// Closed at accept: by limits.max_connections, by limits.max_connections_per_client.
        var refused_total: Int
        var refused_per_client: Int
        /// Parked connections closed to make room at limits.max_connections.
        var evicted: Int
        /// Closed after an answer at limits.max_requests_per_connection, at timeouts.max_connection_age.
        var recycled_max_requests: Int
        var recycled_max_age: Int
        /// Closed because they held memory longest at limits.stalled_client_bytes, and what
        /// connections that do not keep up hold now.
        var stalled_closed: Int
        var stalled_bytes: Int
        /// limits.max_connections in force.
        var limit: Int
    }
    struct Cluster: Encodable {
        var replica_id: String
        var redis: String
        var store_up: Bool
        /// leased, static_share or closed.
        var mode: String
        var degraded: Bool
        var replicas: Int
        /// S as this replica sees it, and its share of it.
        var cluster_slots: Int
        var share_slots: Int
        /// The share it is due (its fair share by the last view): above `share_slots` while
        /// other replicas' running requests still hold the slots; its queue is sized by it.
        var due_slots: Int
        var demand: Int
        var syncs_ok: Int
        var syncs_failed: Int
        var last_error: String?
        var global_tokens: GlobalTokens?
    }
    struct GlobalTokens: Encodable {
        /// shared, static_share or closed.
        var mode: String
        var stock: Int
        var batch: Int
        var fetched: Int
        var fetches_failed: Int
    }
    struct Config: Encodable {
        var version: Int
        var reloads_succeeded: Int
        var reloads_failed: Int
    }

    var version: String
    var uptime_s: Double
    var draining: Bool
    var admission: Admission
    var upstreams: [Upstream]
    var requests: Requests
    var shed: [String: Int]
    var would_shed_dry_run: [String: Int]
    var latency: Latency
    var connections: Connections
    var config: Config
    var access_log_dropped: Int
    /// Access log lines the output refused (a full disk, a closed pipe).
    var access_log_write_failed: Int
    var request_spool: RequestSpool
    var cluster: Cluster?

    init(_ r: GatewayObservability.Reading) {
        version = FluxgateBuild.version
        uptime_s = (r.uptime * 10).rounded() / 10
        draining = r.draining
        admission = Admission(
            in_flight: r.gate.inFlight, queued: r.gate.queued, slots: r.gate.slots, capacity: r.gate.capacity,
            queue_limit: r.gate.queueLimit, queue_standing: r.gate.standing, utilization: (r.utilization * 1000).rounded() / 1000,
            target_utilization: r.settings.config.admission.targetUtilization, ready: r.notReadyReason == nil,
            not_ready_reason: r.notReadyReason, dry_run: r.settings.config.admission.dryRun)
        upstreams = r.upstreams.map {
            Upstream(
                name: $0.name, url: $0.url, address: $0.address, state: $0.state, ready: $0.routed, in_flight: $0.inFlight,
                ejections: $0.health.ejectionsTotal, ejections_overflow: $0.health.ejectionsOverflowed, flips_up: $0.flips.up, flips_down: $0.flips.down,
                failures: Dictionary(uniqueKeysWithValues: $0.failures.map { ($0.key.rawValue, $0.value) }), weight: $0.weight,
                max_concurrency: $0.maxConcurrency)
        }
        let t = r.traffic
        requests = Requests(
            total: t.total, proxied: t.endCounts[0], shed: t.endCounts[1], gateway_answer: t.endCounts[2], cut_off: t.endCounts[3],
            client_gone: t.endCounts[4], retries: t.retries, retry_budget_exhausted: t.retryBudgetExhausted,
            refused_before_head: t.headRefusals.reduce(0, +),
            timeouts: Dictionary(uniqueKeysWithValues: ExchangeDeadlines.Expiry.allCases.map { ($0.rawValue, t.timeouts[$0.index]) }))
        shed = Dictionary(uniqueKeysWithValues: ShedReason.allCases.map { ($0.rawValue, t.shedCount($0)) })
        would_shed_dry_run = Dictionary(uniqueKeysWithValues: ShedReason.allCases.map { ($0.rawValue, r.wouldShed[$0.index]) })
        let h = r.latency
        func ms(_ percentile: Double) -> Double { h.totalCount == 0 ? 0 : Double(h.valueAtPercentile(percentile)) / 1000 }
        latency = Latency(
            window_s: "last 10-20 s", count: h.totalCount, p50_ms: ms(50), p90_ms: ms(90), p95_ms: ms(95), p99_ms: ms(99),
            p999_ms: ms(99.9), max_ms: h.totalCount == 0 ? 0 : Double(h.max) / 1000)
        connections = Connections(
            client: r.live.openClientConnections, client_parked: r.live.parkedConnections, client_accepted: r.acceptedConnections, upstream_open: r.live.upstreamConnections, upstream_idle: r.idleUpstreamConnections,
            upstream_waiting: r.upstreamConnectionWaiters,
            refused_total: t.connectionsRefused[0], refused_per_client: t.connectionsRefused[1], evicted: t.connectionsEvicted,
            recycled_max_requests: t.connectionsRecycled[ConnectionReuse.Reason.maxRequests.rawValue],
            recycled_max_age: t.connectionsRecycled[ConnectionReuse.Reason.maxAge.rawValue],
            stalled_closed: t.stalledClientsClosed, stalled_bytes: r.live.stalledClientBytes, limit: r.clientConnectionLimit)
        config = Config(version: r.settings.version, reloads_succeeded: r.reloads.success, reloads_failed: r.reloads.error)
        access_log_dropped = r.accessLogDropped
        access_log_write_failed = r.accessLogWriteFailed
        request_spool = RequestSpool(
            spooled: t.bodiesSpooled, budget_refused: t.spoolBudgetRefusals, reserved_bytes: r.spool.reserved,
            limit_bytes: r.spool.limit)
        cluster = r.cluster.map { c in
            Cluster(
                replica_id: c.replicaID, redis: c.redis, store_up: c.status.storeUp, mode: c.status.mode.rawValue,
                degraded: c.status.mode != .leased || (c.tokens.map { $0.mode != .shared } ?? false), replicas: c.status.replicas,
                cluster_slots: r.gate.fullSlots, share_slots: r.gate.slots, due_slots: r.gate.dueSlots, demand: c.status.demand, syncs_ok: c.syncs.ok,
                syncs_failed: c.syncs.failed, last_error: c.status.lastError,
                global_tokens: c.tokens.map {
                    GlobalTokens(mode: $0.mode.rawValue, stock: $0.stock, batch: $0.batch, fetched: c.tokensFetched, fetches_failed: c.tokenFetches.failed)
                })
        }
    }
}
