import Yams

/// The configuration in force written back as a config file: every key, defaults
/// included, after the environment's overrides — what `fluxgate check-config --print`
/// prints and the admin listener's `GET /config` answers, as `nginx -T` and Envoy's
/// `/config_dump` show theirs.
///
/// Written through Yams's emitter (its quoting rules, not ours) from a node tree whose
/// keys follow `gateway.conf.example`'s order. Read back by ``ConfigLoader`` it gives the
/// same ``GatewayConfig`` (tested for every key), but for the secrets, which are
/// replaced by ``redactedMarker`` unless asked for: `cluster.password`, the password in
/// `cluster.redis_url`, and `demo.jwt_secret` unless it is the public default.
public struct ConfigDocument {
    public static let redactedMarker = "[redacted]"

    let config: GatewayConfig
    let showSecrets: Bool

    public init(_ config: GatewayConfig, showSecrets: Bool = false) {
        self.config = config
        self.showSecrets = showSecrets
    }

    /// The comment lines a printed configuration starts with: `title`, the `FLUXGATE_*`
    /// variables in `environment` that set keys, the keys the command line set
    /// (`commandLine`, such as `listen (serve --listen)`; no line when none), and how
    /// secrets read.
    public func header(_ title: String, environment: [String: String], commandLine: [String] = []) -> [String] {
        let overrides = ConfigLoader.environmentOverrides(environment)
        return [title, overrides.isEmpty ? "no environment override" : "from the environment: \(overrides.joined(separator: ", "))"]
            + (commandLine.isEmpty ? [] : ["from the command line: \(commandLine.joined(separator: ", "))"])
            + (showSecrets ? [] : ["secrets shown as \(Self.redactedMarker)"])
    }

    /// The YAML text, after `header` lines (each written as a `# ` comment).
    public func yaml(header: [String] = []) -> String {
        let comments = header.map { "# \($0)\n" }.joined()
        // Width -1: no line folded, so each key reads on one line as in the example file.
        let body = (try? Yams.serialize(node: root, width: -1, allowUnicode: true)) ?? "{}\n"
        return comments + body + (body.hasSuffix("\n") ? "" : "\n")
    }

    var root: Node {
        let c = config
        return table([
            ("listen", text(c.listen.description)),
            ("admin_listen", text(c.adminListen.description)),
            ("workers", plain(c.workers)),
            ("upstreams", list(c.upstreams.map(upstream), .block)),
            ("balancer", plain(c.balancer.rawValue)),
            ("health_check", healthCheck),
            ("retry", table([
                ("enabled", plain(c.retry.enabled)),
                ("on_timeout", plain(c.retry.onTimeout)),
                ("budget_percent", plain(c.retry.budgetPercent)),
                ("min_concurrent", plain(c.retry.minConcurrent)),
            ])),
            ("admission", admission),
            ("rate_limit", rateLimit),
            ("timeouts", timeouts),
            ("limits", limits),
            ("trusted_proxies", list(c.trustedProxies.map { text($0.description) })),
            ("tls", table([
                ("certificate", text(c.tls.certificate)),
                ("key", text(c.tls.key)),
                ("min_version", text(c.tls.minVersion.rawValue)),
                ("verify_client", text(c.tls.verifyClient.rawValue)),
                ("client_ca_file", text(c.tls.clientCAFile)),
            ])),
            ("upstream_tls", table([
                ("verify", plain(c.upstreamTLS.verify)),
                ("ca_file", text(c.upstreamTLS.caFile)),
                ("certificate", text(c.upstreamTLS.certificate)),
                ("key", text(c.upstreamTLS.key)),
            ])),
            ("pool", table([
                ("max_idle_per_upstream", plain(c.pool.maxIdlePerUpstream)),
                ("max_connections", plain(c.pool.maxConnections)),
                ("max_connecting", plain(c.pool.maxConnecting)),
                ("idle_timeout", duration(c.pool.idleTimeout)),
                ("max_requests_per_connection", plain(c.pool.maxRequestsPerConnection)),
                ("max_connection_age", duration(c.pool.maxConnectionAge)),
            ])),
            ("dns", table([
                ("refresh", duration(c.dns.refresh)),
                ("family", plain(c.dns.family.rawValue)),
            ])),
            ("access_log", table([
                ("enabled", plain(c.accessLog.enabled)),
                ("format", plain(c.accessLog.format.rawValue)),
                ("sample", plain(c.accessLog.sample)),
                ("path", text(c.accessLog.path)),
                ("flush_interval", duration(c.accessLog.flushInterval)),
            ])),
            ("log_level", plain(c.logLevel.rawValue)),
            ("log_format", plain(c.logFormat.rawValue)),
            ("drain_timeout", duration(c.drainTimeout)),
            ("parser", plain(c.parser.rawValue)),
            ("abort_on_client_close", plain(c.abortOnClientClose)),
            ("reload", table([
                ("watch", plain(c.reload.watch)),
                ("interval", duration(c.reload.interval)),
            ])),
            ("cluster", cluster),
            ("demo", demo),
        ])
    }

    private func upstream(_ u: UpstreamConfig) -> Node {
        let hostHeader: Node
        switch u.hostHeader {
        case .client: hostHeader = plain("client")
        case .upstream: hostHeader = plain("upstream")
        case .fixed(let value): hostHeader = text(value)
        }
        return table([
            ("name", text(u.name)),
            ("url", text(u.url.description)),
            ("max_concurrency", plain(u.maxConcurrency)),
            ("weight", plain(u.weight)),
            ("addresses", u.maxAddresses == UpstreamConfig.allAddresses ? plain("all") : plain(u.maxAddresses)),
            ("host_header", hostHeader),
        ])
    }

    private var healthCheck: Node {
        let h = config.healthCheck
        return table([
            ("enabled", plain(h.enabled)),
            ("path", text(h.path)),
            ("expected_statuses", list(h.expectedStatuses.items.map(plain))),
            ("interval", duration(h.interval)),
            ("timeout", duration(h.timeout)),
            ("rise", plain(h.rise)),
            ("fall", plain(h.fall)),
            ("slow_start", duration(h.slowStart)),
            ("passive", table([
                ("enabled", plain(h.passive.enabled)),
                ("consecutive_failures", plain(h.passive.consecutiveFailures)),
                ("base_ejection", duration(h.passive.baseEjection)),
                ("max_ejection", duration(h.passive.maxEjection)),
                ("max_ejection_percent", plain(h.passive.maxEjectionPercent)),
                ("panic_threshold", plain(h.passive.panicThreshold)),
            ])),
        ])
    }

    private var admission: Node {
        let a = config.admission
        return table([
            ("target_utilization", plain(a.targetUtilization)),
            ("queue_timeout", duration(a.queueTimeout)),
            ("queue_discipline", plain(a.queueDiscipline.rawValue)),
            ("queue_delay_target", duration(a.queueDelayTarget)),
            ("queue_delay_interval", duration(a.queueDelayInterval)),
            ("dry_run", plain(a.dryRun)),
            ("shed_at", table(Priority.allCases.reversed().map { ($0.rawValue, plain(a.shedAt[$0] ?? 1)) })),
            ("routes", list(a.routes.map { table([("prefix", text($0.prefix)), ("priority", plain($0.priority.rawValue))]) }, .block)),
        ])
    }

    private var rateLimit: Node {
        let global = config.rateLimit.global
        let perClient = config.rateLimit.perClient
        return table([
            ("global", table([
                ("enabled", plain(global.enabled)),
                ("dry_run", plain(global.dryRun)),
                ("rate", plain(global.rate)),
                ("burst", plain(global.burst)),
                ("batch", plain(global.batch)),
                ("on_store_failure", plain(global.onStoreFailure.rawValue)),
            ])),
            ("per_client", table([
                ("enabled", plain(perClient.enabled)),
                ("dry_run", plain(perClient.dryRun)),
                ("rate", plain(perClient.rate)),
                ("burst", plain(perClient.burst)),
                ("key", text(perClient.key)),
                ("max_clients", plain(perClient.maxClients)),
            ])),
        ])
    }

    private var timeouts: Node {
        let t = config.timeouts
        return table([
            ("connect", duration(t.connect)),
            ("upstream_header", duration(t.upstreamHeader)),
            ("client_header", duration(t.clientHeader)),
            ("idle", duration(t.idle)),
            ("park_after", duration(t.parkAfter)),
            ("client_body", duration(t.clientBody)),
            ("client_send", duration(t.clientSend)),
            ("upstream_read", duration(t.upstreamRead)),
            ("upstream_send", duration(t.upstreamSend)),
            ("request", duration(t.request)),
            ("lingering_close", duration(t.lingeringClose)),
            ("tunnel_idle", duration(t.tunnelIdle)),
            ("max_connection_age", duration(t.maxConnectionAge)),
        ])
    }

    private var limits: Node {
        let l = config.limits
        return table([
            ("max_header_bytes", bytes(l.maxHeaderBytes)),
            ("max_header_count", plain(l.maxHeaderCount)),
            ("max_body_bytes", bytes(l.maxBodyBytes)),
            ("request_buffer_bytes", bytes(l.requestBufferBytes)),
            ("request_spool_bytes", bytes(l.requestSpoolBytes)),
            ("request_spool_dir", text(l.requestSpoolDir)),
            ("stream_body_prefixes", list(l.streamBodyPrefixes.map(text))),
            ("max_pipelined", plain(l.maxPipelined)),
            ("stalled_client_bytes", bytes(l.stalledClientBytes)),
            ("max_connections", plain(l.maxConnections)),
            ("max_connections_per_client", plain(l.maxConnectionsPerClient)),
            ("client_ipv6_prefix", plain(l.clientIPv6Prefix)),
            ("allow_trace", plain(l.allowTrace)),
            ("underscores_in_headers", plain(l.underscoresInHeaders)),
            ("max_tunnels", plain(l.maxTunnels)),
            ("upgrade_protocols", list(l.upgradeProtocols.names.map(plain))),
            ("max_requests_per_connection", plain(l.maxRequestsPerConnection)),
        ])
    }

    private var cluster: Node {
        let k = config.cluster
        return table([
            ("enabled", plain(k.enabled)),
            ("redis_url", text(k.redis.text(password: k.redis.password.map { showSecrets ? $0 : Self.redactedMarker }))),
            ("tls_ca_file", text(k.tlsCAFile)),
            ("tls_verify", plain(k.tlsVerify)),
            ("tls_certificate", text(k.tlsCertificate)),
            ("tls_key", text(k.tlsKey)),
            ("key_prefix", text(k.keyPrefix)),
            ("sync_interval", duration(k.syncInterval)),
            ("lease_ttl", duration(k.leaseTTL)),
            // Empty means unset here as in the file: the host name and process id, no password.
            ("replica_id", text(k.replicaID ?? "")),
            ("password", text(k.password.map { showSecrets ? $0 : Self.redactedMarker } ?? "")),
            ("connect_timeout", duration(k.connectTimeout)),
            ("command_timeout", duration(k.commandTimeout)),
            ("share_floor", plain(k.shareFloor)),
            ("on_store_failure", plain(k.onStoreFailure.rawValue)),
            ("fallback_replicas", plain(k.fallbackReplicas)),
        ])
    }

    private var demo: Node {
        let d = config.demo
        let publicSecret = d.jwtSecret == DemoConfig().jwtSecret
        return table([
            ("enabled", plain(d.enabled)),
            ("instances", plain(d.instances)),
            ("base_port", plain(d.basePort)),
            ("capacity", plain(d.capacity)),
            ("latency", duration(d.latency)),
            ("jitter", duration(d.jitter)),
            ("max_inflight", plain(d.maxInFlight)),
            ("fail_health", plain(d.failHealth)),
            ("jwt_secret", text(showSecrets || publicSecret ? d.jwtSecret : Self.redactedMarker)),
        ])
    }

    // Free text is double-quoted (an upstream named `null` or `true` stays a string);
    // numbers, booleans, durations and enumerations are plain, as the example file has them.
    private func text(_ value: String) -> Node { Node(value, .implicit, .doubleQuoted) }
    private func plain(_ value: String) -> Node { Node(value, .implicit, .plain) }
    private func plain(_ value: Int) -> Node { plain(String(value)) }
    private func plain(_ value: Bool) -> Node { plain(value ? "true" : "false") }
    private func plain(_ value: Double) -> Node { plain("\(value)") }
    private func duration(_ value: Duration) -> Node { plain(DurationParser.format(value)) }
    private func bytes(_ value: Int) -> Node { plain(ByteSizeParser.format(value)) }
    private func table(_ pairs: [(String, Node)]) -> Node { Node(pairs.map { (Node($0.0), $0.1) }) }
    /// Lists of scalars on one line (`[200-399]`), lists of tables one entry per line.
    private func list(_ items: [Node], _ style: Node.Sequence.Style = .flow) -> Node {
        Node(items, .implicit, items.isEmpty ? .flow : style)
    }
}
