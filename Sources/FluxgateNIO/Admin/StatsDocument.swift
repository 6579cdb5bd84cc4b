import FluxgateCore

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
        /// Slots given back by requests on upstreams that left rotation, so far.
        var slots_given_back: Int
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
        /// Upstream connections closed instead of pooled again at pool.max_requests_per_connection, at pool.max_connection_age.
        var upstream_retired_max_requests: Int
        var upstream_retired_max_age: Int
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
    /// The rate limits in force and what they hold now.
    struct RateLimit: Encodable {
        struct Global: Encodable {
            var enabled: Bool
            var dry_run: Bool
            var rate: Double
            var burst: Int
            /// Whole tokens available now (cluster mode: the local stock); absent when off.
            var tokens: Int?
        }
        struct PerClient: Encodable {
            var enabled: Bool
            var dry_run: Bool
            var rate: Double
            var burst: Int
            var key: String
            var max_clients: Int
            var clients_tracked: Int
            /// Buckets dropped at `max_clients` since start.
            var clients_evicted: Int
        }
        var global: Global
        var per_client: PerClient
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
    var rate_limit: RateLimit
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
            not_ready_reason: r.notReadyReason, dry_run: r.settings.config.admission.dryRun, slots_given_back: r.gate.givenBack)
        let limits = r.settings.config.rateLimit
        rate_limit = RateLimit(
            global: .init(
                enabled: limits.global.enabled, dry_run: limits.global.dryRun, rate: limits.global.rate, burst: limits.global.burst,
                tokens: r.rateLimit.globalTokens),
            per_client: .init(
                enabled: limits.perClient.enabled, dry_run: limits.perClient.dryRun, rate: limits.perClient.rate, burst: limits.perClient.burst,
                key: limits.perClient.key, max_clients: limits.perClient.maxClients, clients_tracked: r.rateLimit.clientsTracked,
                clients_evicted: r.rateLimit.clientsEvicted))
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
            upstream_retired_max_requests: r.upstreamConnectionsRetired[ConnectionReuse.Reason.maxRequests.rawValue],
            upstream_retired_max_age: r.upstreamConnectionsRetired[ConnectionReuse.Reason.maxAge.rawValue],
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
