import Foundation
import Yams

/// The other sections of the config file, one decoder each, called in this order by
/// ``ConfigLoader/decode(_:reader:)``; each reports its problems under its key path.
extension ConfigLoader {
    /// `admission`, with its `shed_at` and `routes`.
    static func decodeAdmission(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> AdmissionConfig {
        var config = AdmissionConfig()
        let admission = r.table(
            "admission", in: top, known: [
                "target_utilization", "queue_timeout", "queue_discipline", "queue_delay_target", "queue_delay_interval", "dry_run",
                "shed_at", "routes",
            ])
        config.targetUtilization = r.double(admission, "target_utilization", default: config.targetUtilization) {
            $0 > 0 && $0 <= 1 ? nil : "must be in (0, 1]"
        }
        config.queueTimeout = r.duration(admission, "queue_timeout", default: config.queueTimeout, minimum: .zero)
        config.queueDelayTarget = r.duration(
            admission, "queue_delay_target", default: config.queueDelayTarget, minimum: .zero)
        config.queueDelayInterval = r.duration(
            admission, "queue_delay_interval", default: config.queueDelayInterval, minimum: .milliseconds(1))
        config.dryRun = r.bool(admission, "dry_run", default: config.dryRun)
        config.queueDiscipline = r.scalar(
            admission, "queue_discipline", default: config.queueDiscipline, expected: "fifo or lifo",
            parse: { AdmissionController.Discipline(rawValue: $0.lowercased()) })
        let shedAt = r.table("shed_at", in: admission, known: Priority.allCases.map(\.rawValue))
        for priority in Priority.allCases {
            config.shedAt[priority] = r.double(shedAt, priority.rawValue, default: config.shedAt[priority]!) {
                $0 > 0 && $0 <= 1 ? nil : "must be in (0, 1]"
            }
        }
        if config.shedAt[.low]! > config.shedAt[.normal]!
            || config.shedAt[.normal]! > config.shedAt[.critical]!
        {
            r.report("admission.shed_at", "must satisfy low <= normal <= critical")
        }
        config.routes = decodeRoutes(admission.entries["routes"], reader: &r)
        return config
    }

    /// `admission.routes`: `{prefix, priority}` pairs, each problem under its index.
    static func decodeRoutes(_ node: Node?, reader r: inout ConfigReader) -> [RoutePriority] {
        r.noteList("admission.routes")
        guard let node, !ConfigReader.isNull(node) else { return [] }
        guard let sequence = node.sequence else {
            r.report("admission.routes", "expected a list of {prefix, priority}", node: node)
            return []
        }
        var routes: [RoutePriority] = []
        for (index, item) in sequence.enumerated() {
            let path = "admission.routes[\(index)]"
            let table = r.table(item, path: path, known: ["prefix", "priority"])
            let prefix = r.string(table, "prefix", default: "") { $0.hasPrefix("/") ? nil : "must start with /" }
            let priority = r.scalar(
                table, "priority", default: Priority.normal, expected: "critical, normal or low",
                parse: { Priority(rawValue: $0.lowercased()) })
            if prefix.isEmpty {
                r.report("\(path).prefix", "is required", node: item)
            } else {
                routes.append(RoutePriority(prefix: prefix, priority: priority))
            }
        }
        return routes
    }

    /// `rate_limit`: `global` and `per_client`.
    static func decodeRateLimit(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> RateLimitConfig {
        var config = RateLimitConfig()
        let rateLimit = r.table("rate_limit", in: top, known: ["global", "per_client"])
        let global = r.table("global", in: rateLimit, known: ["enabled", "dry_run", "rate", "burst", "batch", "on_store_failure"])
        config.global.enabled = r.bool(global, "enabled", default: config.global.enabled)
        config.global.dryRun = r.bool(global, "dry_run", default: config.global.dryRun)
        config.global.rate = r.double(global, "rate", default: config.global.rate, check: Self.rateCheck)
        config.global.burst = r.int(global, "burst", default: config.global.burst, range: 1...Int(Int32.max))
        config.global.batch = r.double(global, "batch", default: config.global.batch) {
            $0 > 0 && $0 <= 1 ? nil : "must be in (0, 1]"
        }
        config.global.onStoreFailure = r.storeFailurePolicy(global, default: config.global.onStoreFailure)
        let perClient = r.table(
            "per_client", in: rateLimit, known: ["enabled", "dry_run", "rate", "burst", "key", "max_clients"])
        config.perClient.enabled = r.bool(perClient, "enabled", default: config.perClient.enabled)
        config.perClient.dryRun = r.bool(perClient, "dry_run", default: config.perClient.dryRun)
        config.perClient.rate = r.double(perClient, "rate", default: config.perClient.rate, check: Self.rateCheck)
        config.perClient.burst = r.int(perClient, "burst", default: config.perClient.burst, range: 1...Int(Int32.max))
        config.perClient.key = r.string(perClient, "key", default: config.perClient.key) { key in
            if key == "ip" { return nil }
            if key.hasPrefix("header:"), key.count > "header:".count, HeaderName.isToken(key.dropFirst("header:".count)) { return nil }
            return "must be ip or header:<Name>, e.g. header:X-API-Key"
        }
        config.perClient.maxClients = r.int(perClient, "max_clients", default: config.perClient.maxClients, range: 1...100_000_000)
        return config
    }

    /// A secret read as the marker a printed configuration puts in its place
    /// (``ConfigDocument``): a file made from `GET /config` would otherwise run with the
    /// marker as its password.
    static let redactedSecret =
        "is \(ConfigDocument.redactedMarker), a printed configuration's stand-in for a secret: put the secret back, or set it in the environment"

    /// `timeouts`.
    static func decodeTimeouts(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> TimeoutsConfig {
        var config = TimeoutsConfig()
        let timeouts = r.table(
            "timeouts", in: top, known: [
                "connect", "upstream_header", "client_header", "idle", "client_body", "client_send", "upstream_read", "upstream_send",
                "request", "lingering_close", "tunnel_idle", "park_after", "max_connection_age",
            ])
        config.connect = r.duration(timeouts, "connect", default: config.connect)
        config.upstreamHeader = r.duration(timeouts, "upstream_header", default: config.upstreamHeader)
        config.clientHeader = r.duration(timeouts, "client_header", default: config.clientHeader)
        config.idle = r.duration(timeouts, "idle", default: config.idle)
        config.clientBody = r.duration(timeouts, "client_body", default: config.clientBody)
        config.clientSend = r.duration(timeouts, "client_send", default: config.clientSend)
        config.upstreamRead = r.duration(timeouts, "upstream_read", default: config.upstreamRead)
        config.upstreamSend = r.duration(timeouts, "upstream_send", default: config.upstreamSend)
        config.request = r.duration(timeouts, "request", default: config.request, minimum: .zero)
        config.lingeringClose = r.duration(timeouts, "lingering_close", default: config.lingeringClose, minimum: .zero)
        config.tunnelIdle = r.duration(timeouts, "tunnel_idle", default: config.tunnelIdle)
        config.parkAfter = r.duration(timeouts, "park_after", default: config.parkAfter, minimum: .zero)
        config.maxConnectionAge = r.duration(
            timeouts, "max_connection_age", default: config.maxConnectionAge, minimum: .zero)
        return config
    }

    /// `limits` (and `TMPDIR`, the spool's default directory).
    static func decodeLimits(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> LimitsConfig {
        var config = LimitsConfig()
        let limits = r.table(
            "limits", in: top, known: [
                "max_header_bytes", "max_header_count", "max_body_bytes", "request_buffer_bytes", "max_pipelined", "max_connections",
                "max_connections_per_client", "underscores_in_headers", "max_tunnels", "request_spool_bytes", "request_spool_dir", "stream_body_prefixes",
                "stalled_client_bytes", "max_requests_per_connection", "upgrade_protocols", "allow_trace", "client_ipv6_prefix",
            ])
        config.maxHeaderBytes = r.bytes(limits, "max_header_bytes", default: config.maxHeaderBytes, range: 1024...1_048_576)
        config.maxHeaderCount = r.int(limits, "max_header_count", default: config.maxHeaderCount, range: 1...10_000)
        config.maxBodyBytes = r.bytes(limits, "max_body_bytes", default: config.maxBodyBytes, range: 0...Int(Int64.max))
        config.requestBufferBytes = r.bytes(
            limits, "request_buffer_bytes", default: config.requestBufferBytes, range: 0...16_777_216)
        config.requestSpoolBytes = r.bytes(
            limits, "request_spool_bytes", default: config.requestSpoolBytes, range: 0...Int(Int64.max))
        config.stalledClientBytes = r.bytes(
            limits, "stalled_client_bytes", default: config.stalledClientBytes, range: 0...Int(Int64.max))
        if config.stalledClientBytes > 0 && config.stalledClientBytes < Self.minimumStalledClientBytes {
            r.report(
                "limits.stalled_client_bytes",
                "must be 0 (no bound) or at least \(Self.minimumStalledClientBytes) (1 MiB): one connection that does not keep up may hold up to ~200 KiB (64 KiB queued in a buffer of up to 128 KiB, the 64 KiB write watermark), so less would close connections at their first stall")
        }
        config.requestSpoolDir = r.string(limits, "request_spool_dir", default: config.requestSpoolDir)
        if let temporary = r.environment["TMPDIR"], !temporary.isEmpty { config.temporaryDirectory = temporary }
        if config.requestSpoolBytes > 0 && config.requestBufferBytes > 0,
            let problem = Self.writableDirectory(config.spoolDirectory)
        {
            r.report(
                "limits.request_spool_dir",
                "\(problem); request bodies over limits.request_buffer_bytes are spooled there — give a writable directory or set limits.request_spool_bytes: 0")
        }
        config.streamBodyPrefixes = decodePrefixes(limits.entries["stream_body_prefixes"], path: "limits.stream_body_prefixes", reader: &r)
        config.maxPipelined = r.int(limits, "max_pipelined", default: config.maxPipelined, range: 1...1024)
        config.maxConnections = r.int(limits, "max_connections", default: config.maxConnections, range: 0...10_000_000)
        config.maxConnectionsPerClient = r.int(
            limits, "max_connections_per_client", default: config.maxConnectionsPerClient, range: 0...10_000_000)
        config.clientIPv6Prefix = r.int(limits, "client_ipv6_prefix", default: config.clientIPv6Prefix, range: 1...128)
        config.underscoresInHeaders = r.bool(limits, "underscores_in_headers", default: config.underscoresInHeaders)
        config.allowTrace = r.bool(limits, "allow_trace", default: config.allowTrace)
        config.maxTunnels = r.int(limits, "max_tunnels", default: config.maxTunnels, range: 0...10_000_000)
        if let protocols = limits.entries["upgrade_protocols"] {
            config.upgradeProtocols = UpgradeProtocols(
                decodeList(
                    protocols, path: "limits.upgrade_protocols", expected: "protocol names such as [websocket]",
                    itemProblem: "a protocol name is a token such as websocket (no version, no spaces)", reader: &r,
                    parse: { UpgradeProtocols.isValidName($0) ? $0 : nil }))
        } else {
            r.noteList("limits.upgrade_protocols")
        }
        config.maxRequestsPerConnection = r.int(
            limits, "max_requests_per_connection", default: config.maxRequestsPerConnection, range: 0...Int(Int32.max))
        return config
    }

    /// `tls`: certificate and key together or neither.
    static func decodeTLS(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> TLSConfig {
        var config = TLSConfig()
        let tls = r.table("tls", in: top, known: ["certificate", "key", "min_version", "verify_client", "client_ca_file"])
        (config.certificate, config.key) = certificateAndKey(tls, "certificate", "key", purpose: "TLS on", reader: &r)
        config.minVersion = r.scalar(
            tls, "min_version", default: config.minVersion, expected: "1.2 or 1.3",
            parse: { TLSConfig.MinimumVersion(rawValue: $0) })
        let errorsBefore = r.errors.count
        config.verifyClient = r.scalar(
            tls, "verify_client", default: config.verifyClient, expected: "on, optional or off", parse: TLSConfig.ClientVerification.parse)
        config.clientCAFile = r.string(tls, "client_ca_file", default: config.clientCAFile, check: Self.readableFile)
        // Each without the other is a mistake that leaves the listener open to every
        // client while looking closed (or refuses them all): both are refused.
        if r.errors.count > errorsBefore {
            // A value not understood, or a file not readable: said already.
        } else if config.verifyClient != .off && config.clientCAFile.isEmpty {
            r.report(
                tls.childPath("client_ca_file"),
                "is required with verify_client: \(config.verifyClient.rawValue) (the CA certificates a client's certificate must chain to)")
        } else if config.verifyClient == .off && !config.clientCAFile.isEmpty {
            r.report(
                tls.childPath("verify_client"),
                "is off, so client_ca_file would do nothing: set verify_client: on (or optional) to ask clients for a certificate, or remove client_ca_file")
        }
        if config.verifyClient != .off && !config.enabled && r.errors.count == errorsBefore {
            r.report(tls.childPath("verify_client"), "needs TLS on the listener (tls.certificate and tls.key)")
        }
        return config
    }

    /// A certificate and its key, the files named by `certificateKey` and `keyKey` of
    /// `table` (readable, or unset): one without the other is refused at the table,
    /// saying what the two are for (`purpose`) — unless `together` is false (a section
    /// that refuses them for another reason). `tls`, `upstream_tls` and `cluster` read
    /// theirs this way.
    static func certificateAndKey(
        _ table: ConfigReader.Table, _ certificateKey: String, _ keyKey: String, purpose: String, together: Bool = true,
        reader r: inout ConfigReader
    ) -> (certificate: String, key: String) {
        let certificate = r.string(table, certificateKey, default: "", check: Self.readableFile)
        let key = r.string(table, keyKey, default: "", check: Self.readableFile)
        if together && certificate.isEmpty != key.isEmpty {
            r.report(table.path, "\(certificateKey) and \(keyKey) go together: set both (\(purpose)) or neither")
        }
        return (certificate, key)
    }

    /// `access_log`.
    static func decodeAccessLog(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> AccessLogConfig {
        var config = AccessLogConfig()
        let accessLog = r.table("access_log", in: top, known: ["enabled", "format", "sample", "path", "flush_interval"])
        config.enabled = r.bool(accessLog, "enabled", default: config.enabled)
        config.format = r.scalar(
            accessLog, "format", default: config.format, expected: "logfmt or json",
            parse: { AccessLogConfig.Format(rawValue: $0.lowercased()) })
        config.sample = r.double(accessLog, "sample", default: config.sample) {
            $0 > 0 && $0 <= 1 ? nil : "must be in (0, 1]"
        }
        config.path = r.string(accessLog, "path", default: config.path) {
            $0.isEmpty ? "must be - (standard output) or a file path" : nil
        }
        config.flushInterval = r.duration(
            accessLog, "flush_interval", default: config.flushInterval, minimum: .zero, maximum: .seconds(60))
        return config
    }

    /// `reload`.
    static func decodeReload(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> ReloadConfig {
        var config = ReloadConfig()
        let reload = r.table("reload", in: top, known: ["watch", "interval"])
        config.watch = r.bool(reload, "watch", default: config.watch)
        config.interval = r.duration(reload, "interval", default: config.interval)
        return config
    }

    /// `demo`: the built-in upstreams.
    static func decodeDemo(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> DemoConfig {
        var config = DemoConfig()
        let demo = r.table(
            "demo", in: top, known: ["enabled", "instances", "base_port", "capacity", "latency", "jitter", "max_inflight", "fail_health", "jwt_secret"])
        config.enabled = r.bool(demo, "enabled", default: config.enabled)
        config.instances = r.int(demo, "instances", default: config.instances, range: 1...64)
        config.basePort = r.int(demo, "base_port", default: config.basePort, range: 1...65535)
        config.capacity = r.int(demo, "capacity", default: config.capacity, range: 1...10_000_000)
        config.latency = r.duration(demo, "latency", default: config.latency, minimum: .zero)
        config.jitter = r.duration(demo, "jitter", default: config.jitter, minimum: .zero)
        config.maxInFlight = r.int(demo, "max_inflight", default: config.maxInFlight, range: 0...10_000_000)
        config.failHealth = r.bool(demo, "fail_health", default: config.failHealth)
        config.jwtSecret = r.string(demo, "jwt_secret", default: config.jwtSecret) {
            $0 == ConfigDocument.redactedMarker ? Self.redactedSecret : $0.utf8.count >= 16 ? nil : "must be at least 16 bytes"
        }
        if config.jitter > config.latency {
            r.report("demo.jitter", "must not exceed demo.latency (\(DurationParser.format(config.latency)))")
        }
        if config.basePort + config.instances - 1 > 65535 {
            r.report("demo.base_port", "base_port + instances - 1 must not exceed 65535")
        }
        return config
    }

    /// `cluster`: on when the section is present (or `FLUXGATE_CLUSTER_REDIS_URL` is set),
    /// unless it says `enabled: false`.
    static func decodeCluster(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> ClusterConfig {
        var cluster = ClusterConfig()
        let present = top.entries["cluster"].map { !ConfigReader.isNull($0) } ?? false
        let section = r.table(
            "cluster", in: top, known: [
                "enabled", "redis_url", "key_prefix", "sync_interval", "lease_ttl", "replica_id", "password", "connect_timeout",
                "command_timeout", "share_floor", "on_store_failure", "fallback_replicas", "tls_ca_file", "tls_verify", "tls_certificate", "tls_key",
            ])
        cluster.enabled = r.bool(section, "enabled", default: present || r.environment["FLUXGATE_CLUSTER_REDIS_URL"] != nil)
        let url = r.string(section, "redis_url", default: "")
        if !url.isEmpty {
            switch RedisURL.parse(url) {
            case .success(let parsed):
                cluster.redis = parsed
                if parsed.password == ConfigDocument.redactedMarker { r.report("cluster.redis_url", Self.redactedSecret, node: section.entries["redis_url"]) }
            case .failure(let problem): r.report("cluster.redis_url", "\(problem.reason), got \"\(url)\"", node: section.entries["redis_url"])
            }
        }
        cluster.keyPrefix = r.string(section, "key_prefix", default: cluster.keyPrefix) {
            $0.isEmpty || $0.utf8.count > 64 || $0.contains(where: { $0 == " " || $0 == "{" || $0 == "}" })
                ? "must be 1 to 64 characters without spaces or braces" : nil
        }
        cluster.syncInterval = r.duration(section, "sync_interval", default: cluster.syncInterval, minimum: .milliseconds(10), maximum: .seconds(60))
        cluster.leaseTTL = r.duration(section, "lease_ttl", default: cluster.leaseTTL, minimum: .milliseconds(100), maximum: .seconds(600))
        if cluster.leaseTTL < cluster.syncInterval * 2 {
            r.report("cluster.lease_ttl", "must be at least twice cluster.sync_interval (\(DurationParser.format(cluster.syncInterval))), or a lease lapses between renewals")
        }
        let replica = r.string(section, "replica_id", default: "") {
            $0.utf8.count > 128 || $0.contains(where: { $0 == " " }) ? "must be at most 128 characters without spaces" : nil
        }
        cluster.replicaID = replica.isEmpty ? nil : replica
        let password = r.string(section, "password", default: "") { $0 == ConfigDocument.redactedMarker ? Self.redactedSecret : nil }
        cluster.password = password.isEmpty ? nil : password
        cluster.connectTimeout = r.duration(section, "connect_timeout", default: cluster.connectTimeout, maximum: .seconds(60))
        cluster.commandTimeout = r.duration(section, "command_timeout", default: cluster.commandTimeout, maximum: .seconds(60))
        cluster.shareFloor = r.double(section, "share_floor", default: cluster.shareFloor) { $0 >= 0 && $0 <= 1 ? nil : "must be in [0, 1]" }
        cluster.onStoreFailure = r.storeFailurePolicy(section, default: cluster.onStoreFailure)
        cluster.fallbackReplicas = r.int(section, "fallback_replicas", default: cluster.fallbackReplicas, range: 1...1000)
        cluster.tlsCAFile = r.string(section, "tls_ca_file", default: cluster.tlsCAFile, check: Self.readableFile)
        cluster.tlsVerify = r.bool(section, "tls_verify", default: cluster.tlsVerify)
        (cluster.tlsCertificate, cluster.tlsKey) = certificateAndKey(
            section, "tls_certificate", "tls_key", purpose: "a client certificate for rediss://", together: cluster.redis.tls, reader: &r)
        if !cluster.redis.tls {
            // Each TLS key that was set names itself.
            let set = [
                ("tls_ca_file", !cluster.tlsCAFile.isEmpty), ("tls_verify", !cluster.tlsVerify),
                ("tls_certificate", !cluster.tlsCertificate.isEmpty), ("tls_key", !cluster.tlsKey.isEmpty),
            ]
            for (key, set) in set where set {
                r.report("cluster.\(key)", "applies to rediss:// URLs only; cluster.redis_url is \(cluster.redis)")
            }
        }
        return cluster
    }
}
