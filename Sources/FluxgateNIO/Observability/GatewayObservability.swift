import FluxgateCore
import FluxgateNIOSupport
import Histogram
import NIOCore
import Prometheus
import Synchronization

/// Reads the gateway for the admin endpoints: `/metrics` (Prometheus text through
/// swift-prometheus's registry) and `/stats` (a JSON snapshot).
///
/// The data path records into per-loop ``LoopStats`` without locks; a reading takes a
/// copy of each on its own loop (one task per loop per scrape) and merges them, then
/// adds the shared state (admission gate, upstream health, pools, connections).
/// Counters reach the registry as deltas since the last scrape (a Prometheus counter
/// only goes up), gauges are set. The two latency histograms are rendered here from
/// the merged per-loop buckets, after the registry's output: swift-prometheus's
/// `Histogram` takes a lock per observation and cannot merge per-loop copies.
public final class GatewayObservability: Sendable {
    public let registry: PrometheusCollectorRegistry
    let runtime: GatewayRuntime
    private let loops: Mutex<[NIOLoopBound<LoopStats>]>
    private let pools: Mutex<[NIOLoopBound<UpstreamPool>]>
    /// Last value given to each registry counter (by its identity), for deltas.
    private let exported = Mutex<[ObjectIdentifier: Int]>([:])
    /// One scrape at a time, so two cannot both add the same delta.
    private let scrape = Mutex<Void>(())
    /// Upstreams whose gauges the last scrape set: one a reload (or a DNS refresh)
    /// removed loses its gauges at the next scrape, so `fluxgate_upstream_up 0` of an
    /// upstream that is gone does not keep an alert firing. Its counters stay (a
    /// counter never goes back).
    private let gaugedUpstreams = Mutex<Set<String>>([])
    private static let upstreamGauges = [
        ("fluxgate_upstream_up", "1 when the upstream is enabled and passes its health checks."),
        ("fluxgate_upstream_ready", "1 when the upstream is in the round-robin schedule now."),
        ("fluxgate_upstream_inflight_requests", "Requests whose current attempt is on this upstream."),
    ]
    let started = NIODeadline.now()

    init(runtime: GatewayRuntime, registry: PrometheusCollectorRegistry) {
        self.runtime = runtime
        self.registry = registry
        self.loops = Mutex([])
        self.pools = Mutex([])
        registry.makeGauge(descriptor: .whole("fluxgate_build_info", help: "Fluxgate's version; always 1."), labels: [("version", FluxgateBuild.version)])
            .set(to: 1.0)
    }

    func attach(loops: [NIOLoopBound<LoopStats>], pools: [NIOLoopBound<UpstreamPool>]) {
        self.loops.withLock { $0 = loops }
        self.pools.withLock { $0 = pools }
    }

    // MARK: Reading

    /// Everything `/metrics` and `/stats` report, read at one moment.
    struct Reading: Sendable {
        var traffic = TrafficStats()
        var latency = LoopStats.makeLatency()
        var idleUpstreamConnections = 0
        /// Requests waiting for a connection at `pool.max_connections` or behind `pool.max_connecting`.
        var upstreamConnectionWaiters = 0
        /// Upstream connections closed at release by the pool's bounds, by ``ConnectionReuse/Reason``.
        var upstreamConnectionsRetired = [Int](repeating: 0, count: ConnectionReuse.Reason.allCases.count)
        var gate: AdmissionGate.Snapshot
        var rateLimit = AdmissionGate.RateLimitReading()
        var upstreams: [UpstreamReading]
        var live: LiveObjects.Counts
        var acceptedConnections: Int
        var parks: Int
        /// Upgraded connections open (and upgrade requests holding a place), and opened in all.
        var tunnels = (open: 0, opened: 0)
        var wouldShed: [Int]
        var reloads: ReloadCounts
        var draining: Bool
        var accessLogDropped: Int
        var accessLogWriteFailed = 0
        /// At the admin listener's cap: idle connections closed to make room, new ones refused.
        var adminConnectionsOverCap = (evicted: 0, refused: 0)
        var settings: GatewaySettings
        var uptime: Double
        var clientConnectionLimit = 0
        /// The spool budget now: bytes reserved by request bodies on disk, and its limit
        /// (how many were spooled or refused is in `traffic`).
        var spool = SpoolBudget(limit: 0)
        /// Linux only.
        var process: ProcessMetrics? = nil  // read for /metrics only (a /proc walk; /stats has no use for it)
        /// Cluster mode only.
        var cluster: ClusterReading? = nil

        var utilization: Double { gate.utilization }

        var notReadyReason: String? {
            GatewayObservability.notReady(draining: draining, anyRouted: upstreams.contains(where: \.routed), gate: gate)
        }
    }

    struct ClusterReading: Sendable {
        var replicaID: String
        var redis: String
        var status: ClusterAgent.Status
        var syncs: (ok: Int, failed: Int)
        var earlyRenewals: Int
        var tokenFetches: (ok: Int, failed: Int)
        var tokensFetched: Int
        /// The shared global bucket, when a global limit is on.
        var tokens: SharedTokenBucket?
    }

    struct UpstreamReading: Sendable {
        var name: String
        var url: String
        var address: String
        var health: UpstreamHealth
        var routed: Bool
        var inFlight: Int
        var flips: (up: Int, down: Int)
        var failures: [UpstreamHealth.Failure.Kind: Int]
        var weight: Int
        var maxConcurrency: Int
        var activeChecks: Bool

        /// `unconfirmed`: active checks are on and none has answered yet.
        var state: String {
            if !health.enabled { return "disabled" }
            if !health.probeUp { return "down" }
            if health.isEjected { return "ejected" }
            if health.unconfirmed && activeChecks { return "unconfirmed" }
            return "up"
        }
    }

    func read() async -> Reading {
        let loops = self.loops.withLock { $0 }
        var traffic = TrafficStats()
        var latency = LoopStats.makeLatency()
        for bound in loops {
            let (loopTraffic, loopLatency) = (try? await bound.eventLoop.submit { (bound.value.traffic, bound.value.recentLatency) }.get())
                ?? (TrafficStats(), LoopStats.makeLatency())
            traffic.add(loopTraffic)
            latency.add(loopLatency)
        }
        var idle = 0
        var waiting = 0
        var retired = [Int](repeating: 0, count: ConnectionReuse.Reason.allCases.count)
        for pool in pools.withLock({ $0 }) {
            let (poolIdle, poolWaiting, poolRetired) =
                (try? await pool.eventLoop.submit { (pool.value.idleConnections, pool.value.waitingForConnections, pool.value.retiredByBound) }.get())
                ?? (0, 0, [])
            idle += poolIdle
            waiting += poolWaiting
            for (reason, count) in poolRetired.enumerated() { retired[reason] += count }
        }
        let settings = runtime.settings
        let routed = runtime.router.routed
        let upstreams = settings.upstreams.indices.compactMap { index -> UpstreamReading? in
            let upstream = settings.upstreams[index]
            guard !upstream.retired else { return nil }
            return UpstreamReading(
                name: upstream.name, url: "\(upstream.url)", address: settings.targets[index].hostPort, health: runtime.health.state(index),
                routed: index < routed.count && routed[index], inFlight: traffic.inFlight(index),
                flips: runtime.health.flips(index), failures: runtime.health.failures(index), weight: upstream.weight, maxConcurrency: upstream.maxConcurrency,
                activeChecks: settings.config.healthCheck.enabled)
        }
        return Reading(
            traffic: traffic, latency: latency, idleUpstreamConnections: idle, upstreamConnectionWaiters: waiting,
            upstreamConnectionsRetired: retired, gate: runtime.gate.snapshot,
            rateLimit: runtime.gate.rateLimitReading(at: .current),
            upstreams: upstreams, live: runtime.live.counts, acceptedConnections: runtime.live.totalClientConnections, parks: runtime.live.totalParks,
            tunnels: (runtime.tunnels.load(ordering: .relaxed), runtime.tunnelsOpened.load(ordering: .relaxed)),
            wouldShed: runtime.gate.dryRun.counts,
            reloads: runtime.reloads, draining: runtime.draining, accessLogDropped: runtime.accessLog.dropped, accessLogWriteFailed: runtime.accessLog.writeFailed,
            adminConnectionsOverCap: (runtime.adminConnectionsEvicted.load(ordering: .relaxed), runtime.adminConnectionsRefused.load(ordering: .relaxed)),
            settings: settings, uptime: uptime, clientConnectionLimit: runtime.clientConnectionLimit.load(ordering: .relaxed),
            spool: runtime.spoolReading,
            cluster: clusterReading(settings))
    }

    private func clusterReading(_ settings: GatewaySettings) -> ClusterReading? {
        guard let agent = runtime.cluster else { return nil }
        let c = agent.counters
        let fetches = c.tokenFetches.load(ordering: .relaxed)
        let fetchFailures = c.tokenFetchFailures.load(ordering: .relaxed)
        return ClusterReading(
            replicaID: agent.replicaID, redis: "\(settings.config.cluster.redis)", status: agent.status,
            syncs: (c.syncs.load(ordering: .relaxed), c.syncFailures.load(ordering: .relaxed)),
            earlyRenewals: c.earlyRenewals.load(ordering: .relaxed),
            tokenFetches: (fetches - fetchFailures, fetchFailures), tokensFetched: c.tokensFetched.load(ordering: .relaxed),
            tokens: runtime.gate.sharedGlobal)
    }

    var uptime: Double { Double((NIODeadline.now() - started).nanoseconds) / 1e9 }

    /// Why `/readyz` says no (docs/OPERATIONS.md, the admin endpoints), or nil when ready; no per-loop reading needed.
    func notReadyReason(countingUtilization: Bool = true) -> String? {
        Self.notReady(
            draining: runtime.draining, anyRouted: runtime.router.routed.contains(true), gate: runtime.gate.snapshot,
            countingUtilization: countingUtilization)
    }

    /// The readiness rule, in one place for `/readyz`, `/stats` and `fluxgate_ready`:
    /// not ready while draining, with no upstream in rotation, or at utilization ≥ 0.9 —
    /// that last part left out for `/readyz?ignore=utilization` (`countingUtilization`
    /// false), the Kubernetes manifest's probe: replicas overloaded together would all
    /// leave the Service at once.
    static func notReady(draining: Bool, anyRouted: Bool, gate: AdmissionGate.Snapshot, countingUtilization: Bool = true) -> String? {
        notReady(draining: draining, anyRouted: anyRouted, utilization: countingUtilization ? gate.utilization : nil)
    }

    /// The rule on plain values (`utilization` nil: not counted).
    static func notReady(draining: Bool, anyRouted: Bool, utilization: Double?) -> String? {
        if draining { return "draining" }
        if !anyRouted { return "no upstream ready" }
        if let utilization, utilization >= 0.9 { return "utilization \(utilization.formatted2) >= 0.90" }
        return nil
    }

    // MARK: /metrics

    /// The Prometheus text exposition.
    func metricsText() async -> [UInt8] {
        var reading = await read()
        reading.process = ProcessMetrics.read()
        return scrape.withLock { _ in
            update(reading)
            var buffer = registry.emitToBuffer()
            Self.appendHistogram(
                "fluxgate_request_duration_seconds", "Time from a request's complete head to the end of its answer, every request.",
                reading.traffic.duration, to: &buffer)
            Self.appendHistogram(
                "fluxgate_queue_wait_seconds", "Time admitted requests waited in the admission queue (0 for those admitted at once).",
                reading.traffic.queueWait, to: &buffer)
            return buffer
        }
    }

    /// `value` is a running total in whole units; with `perUnit`, units per exported
    /// unit (CPU ticks per second).
    private func counter(_ name: String, _ labels: [(String, String)] = [], help: String, _ value: Int, perUnit: Double? = nil) {
        let counter = registry.makeCounter(descriptor: .whole(name, help: help), labels: labels)
        let id = ObjectIdentifier(counter)
        let delta = exported.withLock { exported in
            defer { exported[id] = value }
            return value - exported[id, default: 0]
        }
        guard delta > 0 else { return }
        if let perUnit { counter.increment(by: Double(delta) / perUnit) } else { counter.increment(by: Int64(delta)) }
    }

    private func gauge(_ name: String, _ labels: [(String, String)] = [], help: String, _ value: Double) {
        registry.makeGauge(descriptor: .whole(name, help: help), labels: labels).set(to: value)
    }

    private func update(_ r: Reading) {
        let t = r.traffic
        let names = r.settings.upstreams.map(\.name)
        for route in Priority.allCases {
            for status in TrafficStats.statusClasses.indices {
                for upstream in [nil] + Array(0..<t.upstreamSlots) {
                    let count = t.requests(route: route, statusClass: status, upstream: upstream)
                    guard count > 0 else { continue }
                    let name = upstream.map { $0 < names.count ? names[$0] : "upstream-\($0)" } ?? "none"
                    counter(
                        "fluxgate_requests_total",
                        [("route", route.rawValue), ("status", TrafficStats.statusClasses[status]), ("upstream", name)],
                        help: "Requests by route class, status class (none: no answer) and the upstream of their last attempt (none: not sent).",
                        count)
                }
            }
        }
        for (index, end) in TrafficStats.ends.enumerated() {
            counter(
                "fluxgate_request_outcomes_total", [("outcome", end)],
                help: "Requests by how they ended: proxied, shed, gateway_answer (413/502/503/504 from Fluxgate), cut_off, client_gone.",
                t.endCounts[index])
        }
        for reason in ShedReason.allCases {
            let help = "Requests refused by admission control, by reason; mode=dry_run counts what a dry run would have refused."
            counter("fluxgate_shed_total", [("reason", reason.rawValue), ("mode", "enforced")], help: help, t.shedCount(reason))
            counter("fluxgate_shed_total", [("reason", reason.rawValue), ("mode", "dry_run")], help: help, r.wouldShed[reason.index])
        }
        let tokensHelp = "Global rate-limit tokens available now (rate_limit.global; in cluster mode the local stock of the shared bucket). Absent without a global limit."
        if let tokens = r.rateLimit.globalTokens {
            gauge("fluxgate_rate_limit_tokens", help: tokensHelp, Double(tokens))
        } else {
            registry.unregisterGauge(registry.makeGauge(descriptor: .whole("fluxgate_rate_limit_tokens", help: tokensHelp)))
        }
        gauge(
            "fluxgate_rate_limit_clients_tracked", help: "Clients with a per-client token bucket now (rate_limit.per_client; at most max_clients).",
            Double(r.rateLimit.clientsTracked))
        counter(
            "fluxgate_rate_limit_clients_evicted_total",
            help: "Per-client buckets dropped, least recently used first, at rate_limit.per_client.max_clients; a dropped client comes back with a full burst.",
            r.rateLimit.clientsEvicted)
        for refusal in HeadRefusal.allCases {
            counter(
                "fluxgate_requests_refused_total", [("status", "\(refusal.status)")],
                help: "Input answered 400, 408, 414, 431, 501 or 505 before it made a complete request head (not in fluxgate_requests_total).",
                t.headRefusals[refusal.rawValue])
        }
        for expiry in ExchangeDeadlines.Expiry.allCases {
            counter(
                "fluxgate_timeouts_total", [("phase", expiry.rawValue)],
                help: "Requests ended by a timeout, by phase (timeouts.client_body, client_send, upstream_header, upstream_read, upstream_send, request).",
                t.timeouts[expiry.index])
        }
        for (index, reason) in ["max_connections", "max_connections_per_client"].enumerated() {
            counter(
                "fluxgate_connections_refused_total", [("reason", reason)],
                help: "Client connections closed at accept by limits.max_connections or limits.max_connections_per_client.",
                t.connectionsRefused[index])
        }
        counter(
            "fluxgate_connections_evicted_total",
            help: "Idle client connections (parked, or TLS idle past timeouts.park_after) closed to make room for a new one at limits.max_connections.",
            t.connectionsEvicted)
        for reason in ConnectionReuse.Reason.allCases {
            counter(
                "fluxgate_connections_recycled_total", [("reason", reason.label)],
                help: "Client connections closed after an answer because they reached limits.max_requests_per_connection or timeouts.max_connection_age (the answer carried Connection: close).",
                t.connectionsRecycled[reason.rawValue])
        }
        for cause in RetryCause.allCases {
            counter(
                "fluxgate_retries_total", [("cause", cause.label)],
                help: "Attempts after the first, by cause: a failed connect (failover), a stale keep-alive connection resent, 502/503/504, a close before the head, an upstream_header timeout.",
                t.retriesByCause[cause.rawValue])
        }
        counter(
            "fluxgate_retry_budget_exhausted_total",
            help: "Retries a request qualified for but the retry budget refused.", t.retryBudgetExhausted)
        gauge("fluxgate_inflight_requests", help: "Admitted requests holding an admission slot.", Double(r.gate.inFlight))
        gauge("fluxgate_queued_requests", help: "Requests waiting in the admission queue.", Double(r.gate.queued))
        counter(
            "fluxgate_admission_slots_given_back_total",
            help: "Admission slots given back by requests in flight on an upstream when it left rotation (they run on without one): a hung upstream's requests, above all.",
            r.gate.givenBack)
        gauge("fluxgate_admission_slots", help: "In-flight slots S = floor(C x target_utilization).", Double(r.gate.slots))
        gauge("fluxgate_admission_capacity", help: "Capacity C: summed max_concurrency of the ready upstreams.", Double(r.gate.capacity))
        gauge("fluxgate_admission_queue_limit", help: "Admission queue bound C - S.", Double(r.gate.queueLimit))
        gauge(
            "fluxgate_admission_queue_standing",
            help: "1 while the queue is standing: waits held to admission.queue_delay_target.", r.gate.standing ? 1 : 0)
        gauge("fluxgate_utilization", help: "(in-flight + queued) / C; 1 when C is 0.", r.utilization)
        gauge(
            "fluxgate_target_utilization", help: "The configured admission.target_utilization.",
            r.settings.config.admission.targetUtilization)
        gauge("fluxgate_ready", help: "1 when /readyz answers 200.", r.notReadyReason == nil ? 1 : 0)
        if let expiry = r.settings.serverCertificateExpiry {
            gauge(
                "fluxgate_tls_certificate_expiry_timestamp_seconds",
                help: "When the data listener's certificate (tls.certificate, as last loaded) expires, in seconds since 1970.", Double(expiry))
        }
        gauge("fluxgate_draining", help: "1 while a graceful drain is running.", r.draining ? 1 : 0)
        let live = Set(r.upstreams.map(\.name))
        for gone in gaugedUpstreams.withLock({ names in defer { names = live }; return names.subtracting(live) }) {
            for (name, help) in Self.upstreamGauges {
                registry.unregisterGauge(registry.makeGauge(descriptor: .whole(name, help: help), labels: [("upstream", gone)]))
            }
        }
        for upstream in r.upstreams {
            let labels = [("upstream", upstream.name)]
            let values = [upstream.health.isCandidate ? 1 : 0, upstream.routed ? 1 : 0, Double(upstream.inFlight)]
            for ((name, help), value) in zip(Self.upstreamGauges, values) { gauge(name, labels, help: help, value) }
            counter("fluxgate_upstream_ejections_total", labels, help: "Passive ejections (outlier detection) of this upstream.",
                upstream.health.ejectionsTotal)
            counter(
                "fluxgate_upstream_ejections_overflow_total", labels,
                help: "Passive ejections of this upstream refused because health_check.passive.max_ejection_percent of the upstreams were out already.",
                upstream.health.ejectionsOverflowed)
            counter("fluxgate_upstream_health_flips_total", labels + [("to", "up")],
                help: "Health flips of this upstream, by the state it flipped to.", upstream.flips.up)
            counter("fluxgate_upstream_health_flips_total", labels + [("to", "down")],
                help: "Health flips of this upstream, by the state it flipped to.", upstream.flips.down)
            for kind in UpstreamHealth.Failure.Kind.allCases {
                counter("fluxgate_upstream_failures_total", labels + [("kind", kind.rawValue)],
                    help: "Failed exchanges with this upstream, by kind: connect, timeout (connect, response head or send; a body that pauses past upstream_read is not counted), reset (closed before the response was complete), 5xx, malformed; retried ones included.",
                    upstream.failures[kind] ?? 0)
            }
        }
        gauge("fluxgate_client_connections", help: "Open client connections (parked ones included).",
            Double(r.live.openClientConnections))
        gauge("fluxgate_client_connections_parked",
            help: "Idle client connections parked outside the event loops (timeouts.park_after).", Double(r.live.parkedConnections))
        counter("fluxgate_client_parks_total", help: "Client connections parked so far (a connection parks each time it idles).", r.parks)
        counter("fluxgate_client_connections_total", help: "Client connections accepted.", r.acceptedConnections)
        gauge(
            "fluxgate_tunnels_open", help: "Upgraded (WebSocket) connections open, plus upgrade requests awaiting their answer (limits.max_tunnels).",
            Double(r.tunnels.open))
        counter("fluxgate_tunnels_total", help: "Connections upgraded (101 Switching Protocols) and tunnelled.", r.tunnels.opened)
        gauge("fluxgate_upstream_connections_open", help: "Open connections to upstreams (busy and idle).",
            Double(r.live.upstreamConnections))
        gauge("fluxgate_upstream_connections_idle", help: "Idle keep-alive connections to upstreams in the pools.",
            Double(r.idleUpstreamConnections))
        gauge(
            "fluxgate_upstream_connection_waiters", help: "Requests waiting for an upstream connection: at pool.max_connections, or behind pool.max_connecting connects in progress.",
            Double(r.upstreamConnectionWaiters))
        for reason in ConnectionReuse.Reason.allCases {
            counter(
                "fluxgate_upstream_connections_retired_total", [("reason", reason.label)],
                help: "Upstream connections closed after an exchange instead of pooled again because they reached pool.max_requests_per_connection or pool.max_connection_age.",
                r.upstreamConnectionsRetired[reason.rawValue])
        }
        for (result, value) in [("success", r.reloads.success), ("error", r.reloads.error)] {
            counter("fluxgate_config_reloads_total", [("result", result)], help: "Configuration reloads by result.", value)
        }
        gauge("fluxgate_config_version", help: "Configurations loaded so far (1 at start, +1 per successful reload).",
            Double(r.settings.version))
        for (reason, value) in [("behind", r.accessLogDropped), ("write_failed", r.accessLogWriteFailed)] {
            counter("fluxgate_access_log_dropped_total", [("reason", reason)],
                help: "Access log lines lost: the output fell behind (8 MiB buffered) or refused them (write_failed: a full disk, a closed pipe).",
                value)
        }
        counter(
            "fluxgate_admin_connections_evicted_total",
            help: "Idle admin-listener connections closed to make room for a new one at the admin listener's cap (64 connections).",
            r.adminConnectionsOverCap.evicted)
        counter(
            "fluxgate_admin_connections_refused_total",
            help: "Admin-listener connections answered 503 at its cap because every open one was being answered.",
            r.adminConnectionsOverCap.refused)
        gauge("fluxgate_uptime_seconds", help: "Seconds since the gateway started.", r.uptime)
        gauge("fluxgate_client_connections_limit",
            help: "limits.max_connections in force (0 in the file: resolved from the descriptor limit).", Double(r.clientConnectionLimit))
        counter("fluxgate_request_bodies_spooled_total",
            help: "Request bodies read whole into a spool file before their request was admitted.", r.traffic.bodiesSpooled)
        counter("fluxgate_request_spool_refused_total",
            help: "Request bodies the spool budget (limits.request_spool_bytes) could not take; they streamed after admission.",
            r.traffic.spoolBudgetRefusals)
        gauge("fluxgate_request_spool_bytes", help: "Spool bytes reserved by request bodies now.", Double(r.spool.reserved))
        gauge("fluxgate_request_spool_limit_bytes", help: "limits.request_spool_bytes in force.", Double(r.spool.limit))
        gauge(
            "fluxgate_stalled_client_bytes",
            help: "Memory held now for client connections that do not keep up: queued input while reads are paused, input of requests not complete, answers not taken.",
            Double(r.live.stalledClientBytes))
        gauge("fluxgate_stalled_client_limit_bytes", help: "limits.stalled_client_bytes in force (0: no bound).",
            Double(r.settings.config.limits.stalledClientBytes))
        counter(
            "fluxgate_stalled_client_closes_total",
            help: "Client connections closed because they had held memory longest while limits.stalled_client_bytes was taken.",
            r.traffic.stalledClientsClosed)
        if let p = r.process {
            counter("process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", p.cpuTicks, perUnit: p.ticksPerSecond)
            gauge("process_open_fds", help: "Number of open file descriptors.", Double(p.openDescriptors))
            gauge("process_max_fds", help: "Maximum number of open file descriptors.", Double(p.maxDescriptors))
            gauge("process_resident_memory_bytes", help: "Resident memory size in bytes.", Double(p.residentBytes))
            gauge("process_virtual_memory_bytes", help: "Virtual memory size in bytes.", Double(p.virtualBytes))
            gauge("process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.", p.startTimeSeconds)
        }
        if let cluster = r.cluster { updateCluster(cluster, r.gate) }
    }

    private func updateCluster(_ c: ClusterReading, _ gate: AdmissionGate.Snapshot) {
        gauge("fluxgate_cluster_store_up", help: "1 when the last lease renewal reached Redis.", c.status.storeUp ? 1 : 0)
        let degradedHelp = "1 while a limit runs on its on_store_failure fallback (Redis unreachable past the lease), by limit."
        gauge("fluxgate_cluster_degraded", [("limit", "capacity")], help: degradedHelp, c.status.mode == .leased ? 0 : 1)
        if let tokens = c.tokens {
            gauge("fluxgate_cluster_degraded", [("limit", "global_rate")], help: degradedHelp, tokens.mode == .shared ? 0 : 1)
            gauge("fluxgate_cluster_token_stock", help: "Global tokens fetched from Redis and not yet spent.", Double(tokens.stock))
        }
        gauge("fluxgate_cluster_replicas", help: "Live gateway replicas (this one included) at the last lease renewal.", Double(c.status.replicas))
        gauge("fluxgate_cluster_slots", help: "S for the whole cluster as this replica sees it: floor(C x target_utilization).", Double(gate.fullSlots))
        gauge("fluxgate_cluster_share_slots", help: "This replica's share of S (its lease, or the fallback).", Double(gate.slots))
        gauge("fluxgate_cluster_demand", help: "The demand this replica reported at the last renewal (running + queued + refused, smoothed).", Double(c.status.demand))
        for (result, value) in [("ok", c.syncs.ok), ("error", c.syncs.failed)] {
            counter("fluxgate_cluster_syncs_total", [("result", result)], help: "Lease renewals by result.", value)
        }
        counter(
            "fluxgate_cluster_early_renewals_total",
            help: "Lease renewals besides the scheduled ones: a request waited or was refused for capacity while this replica held less than S (at most three that bring nothing per sync_interval), a retry while it holds less than its due share, or a request that ended while handing over to an upgrade's new process (counted in fluxgate_cluster_syncs_total too).",
            c.earlyRenewals)
        for (result, value) in [("ok", c.tokenFetches.ok), ("error", c.tokenFetches.failed)] {
            counter("fluxgate_cluster_token_fetches_total", [("result", result)], help: "Batches asked of the shared token bucket, by result.", value)
        }
        counter("fluxgate_cluster_tokens_fetched_total", help: "Global tokens received from the shared bucket.", c.tokensFetched)
    }

    static func appendHistogram(_ name: String, _ help: String, _ histogram: LatencyHistogram, to buffer: inout [UInt8]) {
        var text = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        let cumulative = histogram.cumulative
        for (index, bound) in LatencyHistogram.bounds.enumerated() {
            text += "\(name)_bucket{le=\"\(bound)\"} \(cumulative[index])\n"
        }
        text += "\(name)_bucket{le=\"+Inf\"} \(histogram.count)\n"
        text += "\(name)_sum \(Double(histogram.sumNanos) / 1e9)\n"
        text += "\(name)_count \(histogram.count)\n"
        buffer.append(contentsOf: text.utf8)
    }
}

/// Configuration reloads so far, by result.
struct ReloadCounts: Sendable, Equatable {
    var success = 0
    var error = 0
}

public enum FluxgateBuild {
    public static let version = "0.2.0"
}

extension Double {
    var formatted2: String {
        let hundredths = Int((self * 100).rounded())
        let fraction = abs(hundredths % 100)
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

extension MetricNameDescriptor {
    /// A metric named whole (swift-prometheus deprecates naming by string and help; its
    /// descriptor joins the non-empty parts, so an empty unit leaves the name as given).
    static func whole(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
