import Foundation
import Yams

/// Turns YAML text (plus environment overrides) into a validated ``GatewayConfig``.
///
/// All problems are collected and thrown together as ``ConfigErrors``, each with its
/// key path, so `fluxgate check-config` can list every mistake in one run.
public enum ConfigLoader {
    /// Top-level keys, in the order `gateway.conf.example` documents them.
    public static let topLevelKeys = [
        "listen", "admin_listen", "workers", "upstreams", "balancer", "health_check", "retry", "admission", "rate_limit",
        "timeouts", "limits", "trusted_proxies", "tls", "upstream_tls", "pool", "dns", "access_log", "log_level", "drain_timeout", "reload", "demo", "parser", "cluster",
        "abort_on_client_close",
    ]

    public static func load(yaml: String, environment: [String: String] = [:]) throws(ConfigErrors) -> GatewayConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            // The scanner's words for a tab that indents do not say "tab".
            let tabs = yaml.split(separator: "\n").contains { $0.prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") }
            let hint = tabs ? "\n(YAML indents with spaces; this file indents with a tab)" : ""
            throw ConfigErrors(errors: [ConfigError(path: "", message: "not valid YAML: \(clipQuotedLines("\(error)"))\(hint)")])
        }
        var reader = ConfigReader(environment: environment)
        let config = decode(root, reader: &reader)
        if !reader.errors.isEmpty {
            // File order reads best; checks without a line (cross-key rules) come last.
            let ordered = reader.errors.enumerated().sorted { lhs, rhs in
                (lhs.element.line ?? .max, lhs.offset) < (rhs.element.line ?? .max, rhs.offset)
            }.map(\.element)
            throw ConfigErrors(errors: ordered)
        }
        return config
    }

    /// libyaml's messages quote the offending line whole, with a caret under the place:
    /// a 200 KB line came back as a 200 KB error (found by trying it). A longer line than
    /// `width` is cut to a window of that width around the caret (or its start when no
    /// caret follows), each cut side marked with `…`, and the caret moved with it.
    static func clipQuotedLines(_ message: String, width: Int = 100) -> String {
        var lines = message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var index = 0
        while index < lines.count {
            let line = Array(lines[index])
            guard line.count > width else {
                index += 1
                continue
            }
            let caretLine = index + 1 < lines.count ? lines[index + 1] : ""
            let isCaret = caretLine.last == "^" && caretLine.dropLast().allSatisfy { $0 == " " }
            let caret = isCaret ? caretLine.count - 1 : 0
            let start = max(0, min(caret - width / 2, line.count - width))
            let end = min(line.count, start + width)
            let head = start > 0 ? "…" : ""
            lines[index] = head + String(line[start..<end]) + (end < line.count ? "…" : "")
            if isCaret {
                lines[index + 1] = String(repeating: " ", count: head.count + caret - start) + "^"
                index += 1
            }
            index += 1
        }
        return lines.joined(separator: "\n")
    }

    /// `cluster`: on when the section is present (or `FLUXGATE_CLUSTER_REDIS_URL` is set),
    /// unless it says `enabled: false`.
    static func decodeCluster(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> ClusterConfig {
        var cluster = ClusterConfig()
        let present = top.entries["cluster"].map { !ConfigReader.isNull($0) } ?? false
        let section = r.table(
            top.entries["cluster"], path: "cluster",
            known: [
                "enabled", "redis_url", "key_prefix", "sync_interval", "lease_ttl", "replica_id", "password", "connect_timeout",
                "command_timeout", "share_floor", "on_store_failure", "fallback_replicas", "tls_ca_file", "tls_verify",
            ])
        cluster.enabled = r.bool(section, "enabled", default: present || r.environment["FLUXGATE_CLUSTER_REDIS_URL"] != nil)
        let url = r.string(section, "redis_url", default: "")
        if !url.isEmpty {
            switch RedisURL.parse(url) {
            case .success(let parsed): cluster.redis = parsed
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
        let password = r.string(section, "password", default: "")
        cluster.password = password.isEmpty ? nil : password
        cluster.connectTimeout = r.duration(section, "connect_timeout", default: cluster.connectTimeout, maximum: .seconds(60))
        cluster.commandTimeout = r.duration(section, "command_timeout", default: cluster.commandTimeout, maximum: .seconds(60))
        cluster.shareFloor = r.double(section, "share_floor", default: cluster.shareFloor) { $0 >= 0 && $0 <= 1 ? nil : "must be in [0, 1]" }
        cluster.onStoreFailure = r.storeFailurePolicy(section, default: cluster.onStoreFailure)
        cluster.fallbackReplicas = r.int(section, "fallback_replicas", default: cluster.fallbackReplicas, range: 1...1000)
        cluster.tlsCAFile = r.string(section, "tls_ca_file", default: cluster.tlsCAFile, check: Self.readableFile)
        cluster.tlsVerify = r.bool(section, "tls_verify", default: cluster.tlsVerify)
        if !cluster.redis.tls {
            // Each TLS key that was set names itself.
            for (key, set) in [("tls_ca_file", !cluster.tlsCAFile.isEmpty), ("tls_verify", !cluster.tlsVerify)] where set {
                r.report("cluster.\(key)", "applies to rediss:// URLs only; cluster.redis_url is \(cluster.redis)")
            }
        }
        return cluster
    }

    static func decode(_ root: Node?, reader r: inout ConfigReader) -> GatewayConfig {
        var config = GatewayConfig()
        let top = r.table(root, path: "", known: topLevelKeys)
        config.listen = r.endpoint(top, "listen", default: config.listen)
        config.adminListen = r.endpoint(top, "admin_listen", default: config.adminListen)
        // `auto` as nginx's `worker_processes auto`: one per core, as 0.
        config.workers = r.scalar(
            top, "workers", default: config.workers, expected: "an integer or auto", parse: { $0 == "auto" ? 0 : Int($0) }
        ) { (0...256).contains($0) ? nil : "must be in 0...256" }
        config.upstreams = decodeUpstreams(top.entries["upstreams"], reader: &r)

        let health = r.table(
            top.entries["health_check"], path: "health_check",
            known: ["enabled", "path", "expected_statuses", "interval", "timeout", "rise", "fall", "slow_start", "passive"])
        config.healthCheck.enabled = r.bool(health, "enabled", default: config.healthCheck.enabled)
        config.healthCheck.path = r.string(health, "path", default: config.healthCheck.path) {
            $0.hasPrefix("/") ? nil : "must start with /"
        }
        if let statuses = health.entries["expected_statuses"] {
            let ranges = decodeList(
                statuses, path: "health_check.expected_statuses", expected: "statuses or ranges such as [200-399]",
                itemProblem: "a status (200) or a range (200-399) within 200-599", reader: &r, parse: HealthyStatuses.parse)
            if !ranges.isEmpty {
                config.healthCheck.expectedStatuses = HealthyStatuses(ranges)
            } else if ConfigReader.isNull(statuses) || statuses.sequence?.isEmpty == true {
                r.report("health_check.expected_statuses", "needs at least one status or range, such as [200-399]", node: statuses)
            }
        } else {
            r.noteList("health_check.expected_statuses")
        }
        config.healthCheck.interval = r.duration(health, "interval", default: config.healthCheck.interval)
        config.healthCheck.timeout = r.duration(health, "timeout", default: config.healthCheck.timeout)
        config.healthCheck.rise = r.int(health, "rise", default: config.healthCheck.rise, range: 1...100)
        config.healthCheck.fall = r.int(health, "fall", default: config.healthCheck.fall, range: 1...100)
        config.healthCheck.slowStart = r.duration(health, "slow_start", default: config.healthCheck.slowStart, minimum: .zero)
        if config.healthCheck.timeout > config.healthCheck.interval {
            r.report("health_check.timeout", "must not exceed health_check.interval (\(DurationParser.format(config.healthCheck.interval)))")
        }
        let passive = r.table(
            health.entries["passive"], path: "health_check.passive",
            known: ["enabled", "consecutive_failures", "base_ejection", "max_ejection", "max_ejection_percent", "panic_threshold"])
        config.healthCheck.passive.enabled = r.bool(passive, "enabled", default: config.healthCheck.passive.enabled)
        config.healthCheck.passive.consecutiveFailures = r.int(
            passive, "consecutive_failures", default: config.healthCheck.passive.consecutiveFailures, range: 1...10_000)
        config.healthCheck.passive.baseEjection = r.duration(passive, "base_ejection", default: config.healthCheck.passive.baseEjection)
        config.healthCheck.passive.maxEjection = r.duration(passive, "max_ejection", default: config.healthCheck.passive.maxEjection)
        config.healthCheck.passive.maxEjectionPercent = r.double(
            passive, "max_ejection_percent", default: config.healthCheck.passive.maxEjectionPercent
        ) { $0 >= 0 && $0 <= 100 ? nil : "must be in [0, 100] (a percentage; at least one upstream may always be ejected)" }
        config.healthCheck.passive.panicThreshold = r.double(
            passive, "panic_threshold", default: config.healthCheck.passive.panicThreshold
        ) { $0 >= 0 && $0 <= 1 ? nil : "must be in [0, 1]" }
        if config.healthCheck.passive.maxEjection < config.healthCheck.passive.baseEjection {
            r.report(
                "health_check.passive.max_ejection",
                "must not be below health_check.passive.base_ejection (\(DurationParser.format(config.healthCheck.passive.baseEjection)))")
        }

        let retry = r.table(top.entries["retry"], path: "retry", known: ["enabled", "on_timeout", "budget_percent", "min_concurrent"])
        config.retry.enabled = r.bool(retry, "enabled", default: config.retry.enabled)
        config.retry.onTimeout = r.bool(retry, "on_timeout", default: config.retry.onTimeout)
        config.retry.budgetPercent = r.double(retry, "budget_percent", default: config.retry.budgetPercent) {
            $0 >= 0 && $0 <= 100 ? nil : "must be in [0, 100]"
        }
        config.retry.minConcurrent = r.int(retry, "min_concurrent", default: config.retry.minConcurrent, range: 0...1_000_000)

        let admission = r.table(
            top.entries["admission"], path: "admission",
            known: [
                "target_utilization", "queue_timeout", "queue_discipline", "queue_delay_target", "queue_delay_interval", "dry_run",
                "shed_at", "routes",
            ])
        config.admission.targetUtilization = r.double(admission, "target_utilization", default: config.admission.targetUtilization) {
            $0 > 0 && $0 <= 1 ? nil : "must be in (0, 1]"
        }
        config.admission.queueTimeout = r.duration(admission, "queue_timeout", default: config.admission.queueTimeout, minimum: .zero)
        config.admission.queueDelayTarget = r.duration(
            admission, "queue_delay_target", default: config.admission.queueDelayTarget, minimum: .zero)
        config.admission.queueDelayInterval = r.duration(
            admission, "queue_delay_interval", default: config.admission.queueDelayInterval, minimum: .milliseconds(1))
        config.admission.dryRun = r.bool(admission, "dry_run", default: config.admission.dryRun)
        config.admission.queueDiscipline = r.scalar(
            admission, "queue_discipline", default: config.admission.queueDiscipline, expected: "fifo or lifo",
            parse: { AdmissionController.Discipline(rawValue: $0.lowercased()) })
        let shedAt = r.table(admission.entries["shed_at"], path: "admission.shed_at", known: Priority.allCases.map(\.rawValue))
        for priority in Priority.allCases {
            config.admission.shedAt[priority] = r.double(shedAt, priority.rawValue, default: config.admission.shedAt[priority]!) {
                $0 > 0 && $0 <= 1 ? nil : "must be in (0, 1]"
            }
        }
        if config.admission.shedAt[.low]! > config.admission.shedAt[.normal]!
            || config.admission.shedAt[.normal]! > config.admission.shedAt[.critical]!
        {
            r.report("admission.shed_at", "must satisfy low <= normal <= critical")
        }
        config.admission.routes = decodeRoutes(admission.entries["routes"], reader: &r)

        let rateLimit = r.table(top.entries["rate_limit"], path: "rate_limit", known: ["global", "per_client"])
        let global = r.table(rateLimit.entries["global"], path: "rate_limit.global", known: ["enabled", "dry_run", "rate", "burst", "batch", "on_store_failure"])
        config.rateLimit.global.enabled = r.bool(global, "enabled", default: config.rateLimit.global.enabled)
        config.rateLimit.global.dryRun = r.bool(global, "dry_run", default: config.rateLimit.global.dryRun)
        config.rateLimit.global.rate = r.double(global, "rate", default: config.rateLimit.global.rate, check: Self.rateCheck)
        config.rateLimit.global.burst = r.int(global, "burst", default: config.rateLimit.global.burst, range: 1...Int(Int32.max))
        config.rateLimit.global.batch = r.double(global, "batch", default: config.rateLimit.global.batch) {
            $0 > 0 && $0 <= 1 ? nil : "must be in (0, 1]"
        }
        config.rateLimit.global.onStoreFailure = r.storeFailurePolicy(global, default: config.rateLimit.global.onStoreFailure)
        let perClient = r.table(
            rateLimit.entries["per_client"], path: "rate_limit.per_client",
            known: ["enabled", "dry_run", "rate", "burst", "key", "max_clients"])
        config.rateLimit.perClient.enabled = r.bool(perClient, "enabled", default: config.rateLimit.perClient.enabled)
        config.rateLimit.perClient.dryRun = r.bool(perClient, "dry_run", default: config.rateLimit.perClient.dryRun)
        config.rateLimit.perClient.rate = r.double(perClient, "rate", default: config.rateLimit.perClient.rate, check: Self.rateCheck)
        config.rateLimit.perClient.burst = r.int(perClient, "burst", default: config.rateLimit.perClient.burst, range: 1...Int(Int32.max))
        config.rateLimit.perClient.key = r.string(perClient, "key", default: config.rateLimit.perClient.key) { key in
            if key == "ip" { return nil }
            if key.hasPrefix("header:"), key.count > "header:".count, HeaderName.isToken(key.dropFirst("header:".count)) { return nil }
            return "must be ip or header:<Name>, e.g. header:X-API-Key"
        }
        config.rateLimit.perClient.maxClients = r.int(perClient, "max_clients", default: config.rateLimit.perClient.maxClients, range: 1...100_000_000)

        let timeouts = r.table(
            top.entries["timeouts"], path: "timeouts",
            known: [
                "connect", "upstream_header", "client_header", "idle", "client_body", "client_send", "upstream_read", "upstream_send",
                "request", "lingering_close", "tunnel_idle", "park_after", "max_connection_age",
            ])
        config.timeouts.connect = r.duration(timeouts, "connect", default: config.timeouts.connect)
        config.timeouts.upstreamHeader = r.duration(timeouts, "upstream_header", default: config.timeouts.upstreamHeader)
        config.timeouts.clientHeader = r.duration(timeouts, "client_header", default: config.timeouts.clientHeader)
        config.timeouts.idle = r.duration(timeouts, "idle", default: config.timeouts.idle)
        config.timeouts.clientBody = r.duration(timeouts, "client_body", default: config.timeouts.clientBody)
        config.timeouts.clientSend = r.duration(timeouts, "client_send", default: config.timeouts.clientSend)
        config.timeouts.upstreamRead = r.duration(timeouts, "upstream_read", default: config.timeouts.upstreamRead)
        config.timeouts.upstreamSend = r.duration(timeouts, "upstream_send", default: config.timeouts.upstreamSend)
        config.timeouts.request = r.duration(timeouts, "request", default: config.timeouts.request, minimum: .zero)
        config.timeouts.lingeringClose = r.duration(timeouts, "lingering_close", default: config.timeouts.lingeringClose, minimum: .zero)
        config.timeouts.tunnelIdle = r.duration(timeouts, "tunnel_idle", default: config.timeouts.tunnelIdle)
        config.timeouts.parkAfter = r.duration(timeouts, "park_after", default: config.timeouts.parkAfter, minimum: .zero)
        config.timeouts.maxConnectionAge = r.duration(
            timeouts, "max_connection_age", default: config.timeouts.maxConnectionAge, minimum: .zero)

        let limits = r.table(
            top.entries["limits"], path: "limits",
            known: [
                "max_header_bytes", "max_header_count", "max_body_bytes", "request_buffer_bytes", "max_pipelined", "max_connections",
                "max_connections_per_client", "underscores_in_headers", "max_tunnels", "request_spool_bytes", "request_spool_dir", "stream_body_prefixes",
                "stalled_client_bytes", "max_requests_per_connection", "upgrade_protocols", "allow_trace", "client_ipv6_prefix",
            ])
        config.limits.maxHeaderBytes = r.bytes(limits, "max_header_bytes", default: config.limits.maxHeaderBytes, range: 1024...1_048_576)
        config.limits.maxHeaderCount = r.int(limits, "max_header_count", default: config.limits.maxHeaderCount, range: 1...10_000)
        config.limits.maxBodyBytes = r.bytes(limits, "max_body_bytes", default: config.limits.maxBodyBytes, range: 0...Int(Int64.max))
        config.limits.requestBufferBytes = r.bytes(
            limits, "request_buffer_bytes", default: config.limits.requestBufferBytes, range: 0...16_777_216)
        config.limits.requestSpoolBytes = r.bytes(
            limits, "request_spool_bytes", default: config.limits.requestSpoolBytes, range: 0...Int(Int64.max))
        config.limits.stalledClientBytes = r.bytes(
            limits, "stalled_client_bytes", default: config.limits.stalledClientBytes, range: 0...Int(Int64.max))
        if config.limits.stalledClientBytes > 0 && config.limits.stalledClientBytes < Self.minimumStalledClientBytes {
            r.report(
                "limits.stalled_client_bytes",
                "must be 0 (no bound) or at least \(Self.minimumStalledClientBytes) (1 MiB): one connection that does not keep up may hold up to ~200 KiB (64 KiB queued in a buffer of up to 128 KiB, the 64 KiB write watermark), so less would close connections at their first stall")
        }
        config.limits.requestSpoolDir = r.string(limits, "request_spool_dir", default: config.limits.requestSpoolDir)
        if let temporary = r.environment["TMPDIR"], !temporary.isEmpty { config.limits.temporaryDirectory = temporary }
        if config.limits.requestSpoolBytes > 0 && config.limits.requestBufferBytes > 0,
            let problem = Self.writableDirectory(config.limits.spoolDirectory)
        {
            r.report(
                "limits.request_spool_dir",
                "\(problem); request bodies over limits.request_buffer_bytes are spooled there — give a writable directory or set limits.request_spool_bytes: 0")
        }
        config.limits.streamBodyPrefixes = decodePrefixes(limits.entries["stream_body_prefixes"], path: "limits.stream_body_prefixes", reader: &r)
        config.limits.maxPipelined = r.int(limits, "max_pipelined", default: config.limits.maxPipelined, range: 1...1024)
        config.limits.maxConnections = r.int(limits, "max_connections", default: config.limits.maxConnections, range: 0...10_000_000)
        config.limits.maxConnectionsPerClient = r.int(
            limits, "max_connections_per_client", default: config.limits.maxConnectionsPerClient, range: 0...10_000_000)
        config.limits.clientIPv6Prefix = r.int(limits, "client_ipv6_prefix", default: config.limits.clientIPv6Prefix, range: 1...128)
        config.limits.underscoresInHeaders = r.bool(limits, "underscores_in_headers", default: config.limits.underscoresInHeaders)
        config.limits.allowTrace = r.bool(limits, "allow_trace", default: config.limits.allowTrace)
        config.limits.maxTunnels = r.int(limits, "max_tunnels", default: config.limits.maxTunnels, range: 0...10_000_000)
        if let protocols = limits.entries["upgrade_protocols"] {
            config.limits.upgradeProtocols = UpgradeProtocols(
                decodeList(
                    protocols, path: "limits.upgrade_protocols", expected: "protocol names such as [websocket]",
                    itemProblem: "a protocol name is a token such as websocket (no version, no spaces)", reader: &r,
                    parse: { UpgradeProtocols.isValidName($0) ? $0 : nil }))
        } else {
            r.noteList("limits.upgrade_protocols")
        }
        config.limits.maxRequestsPerConnection = r.int(
            limits, "max_requests_per_connection", default: config.limits.maxRequestsPerConnection, range: 0...Int(Int32.max))
        config.trustedProxies = decodeAddressRanges(top.entries["trusted_proxies"], path: "trusted_proxies", reader: &r)

        let tls = r.table(top.entries["tls"], path: "tls", known: ["certificate", "key", "min_version"])
        config.tls.certificate = r.string(tls, "certificate", default: config.tls.certificate, check: Self.readableFile)
        config.tls.key = r.string(tls, "key", default: config.tls.key, check: Self.readableFile)
        config.tls.minVersion = r.scalar(
            tls, "min_version", default: config.tls.minVersion, expected: "1.2 or 1.3",
            parse: { TLSConfig.MinimumVersion(rawValue: $0) })
        if config.tls.certificate.isEmpty != config.tls.key.isEmpty {
            r.report("tls", "certificate and key go together: set both (TLS on) or neither")
        }
        let upstreamTLS = r.table(top.entries["upstream_tls"], path: "upstream_tls", known: ["verify", "ca_file"])
        config.upstreamTLS.verify = r.bool(upstreamTLS, "verify", default: config.upstreamTLS.verify)
        config.upstreamTLS.caFile = r.string(upstreamTLS, "ca_file", default: config.upstreamTLS.caFile, check: Self.readableFile)

        let pool = r.table(top.entries["pool"], path: "pool", known: ["max_idle_per_upstream", "max_connections", "max_connecting", "idle_timeout"])
        config.pool.maxIdlePerUpstream = r.int(pool, "max_idle_per_upstream", default: config.pool.maxIdlePerUpstream, range: 0...100_000)
        config.pool.maxConnections = r.int(pool, "max_connections", default: config.pool.maxConnections, range: 0...10_000_000)
        config.pool.maxConnecting = r.int(pool, "max_connecting", default: config.pool.maxConnecting, range: 0...100_000)
        config.pool.idleTimeout = r.duration(pool, "idle_timeout", default: config.pool.idleTimeout)

        let accessLog = r.table(top.entries["access_log"], path: "access_log", known: ["enabled", "format", "sample", "path", "flush_interval"])
        config.accessLog.enabled = r.bool(accessLog, "enabled", default: config.accessLog.enabled)
        config.accessLog.format = r.scalar(
            accessLog, "format", default: config.accessLog.format, expected: "logfmt or json",
            parse: { AccessLogConfig.Format(rawValue: $0.lowercased()) })
        config.accessLog.sample = r.double(accessLog, "sample", default: config.accessLog.sample) {
            $0 > 0 && $0 <= 1 ? nil : "must be in (0, 1]"
        }
        config.accessLog.path = r.string(accessLog, "path", default: config.accessLog.path) {
            $0.isEmpty ? "must be - (standard output) or a file path" : nil
        }
        config.accessLog.flushInterval = r.duration(
            accessLog, "flush_interval", default: config.accessLog.flushInterval, minimum: .zero, maximum: .seconds(60))
        config.logLevel = r.scalar(
            top, "log_level", default: config.logLevel, expected: "trace, debug, info, notice, warning, error or critical",
            parse: { LogLevel(rawValue: $0.lowercased()) })
        config.drainTimeout = r.duration(top, "drain_timeout", default: config.drainTimeout, minimum: .zero)
        config.balancer = r.scalar(
            top, "balancer", default: config.balancer, expected: "round_robin or least_requests",
            parse: { BalancerChoice(rawValue: $0.lowercased()) })
        config.parser = r.scalar(
            top, "parser", default: config.parser, expected: "fluxgate or llhttp", parse: { RequestParserChoice(rawValue: $0.lowercased()) })
        config.abortOnClientClose = r.bool(top, "abort_on_client_close", default: config.abortOnClientClose)
        let dns = r.table(top.entries["dns"], path: "dns", known: ["refresh", "family"])
        config.dns.refresh = r.duration(dns, "refresh", default: config.dns.refresh, minimum: .zero)
        config.dns.family = r.scalar(
            dns, "family", default: config.dns.family, expected: "v4_preferred, auto, v4_only or v6_only",
            parse: { AddressFamilyPreference(rawValue: $0.lowercased()) })
        if config.dns.refresh != .zero && config.dns.refresh < .seconds(1) {
            r.report("dns.refresh", "must be 0s (off) or at least 1s")
        }
        let reload = r.table(top.entries["reload"], path: "reload", known: ["watch", "interval"])
        config.reload.watch = r.bool(reload, "watch", default: config.reload.watch)
        config.reload.interval = r.duration(reload, "interval", default: config.reload.interval)

        let demo = r.table(
            top.entries["demo"], path: "demo",
            known: ["enabled", "instances", "base_port", "capacity", "latency", "jitter", "max_inflight", "fail_health", "jwt_secret"])
        config.demo.enabled = r.bool(demo, "enabled", default: config.demo.enabled)
        config.demo.instances = r.int(demo, "instances", default: config.demo.instances, range: 1...64)
        config.demo.basePort = r.int(demo, "base_port", default: config.demo.basePort, range: 1...65535)
        config.demo.capacity = r.int(demo, "capacity", default: config.demo.capacity, range: 1...10_000_000)
        config.demo.latency = r.duration(demo, "latency", default: config.demo.latency, minimum: .zero)
        config.demo.jitter = r.duration(demo, "jitter", default: config.demo.jitter, minimum: .zero)
        config.demo.maxInFlight = r.int(demo, "max_inflight", default: config.demo.maxInFlight, range: 0...10_000_000)
        config.demo.failHealth = r.bool(demo, "fail_health", default: config.demo.failHealth)
        config.demo.jwtSecret = r.string(demo, "jwt_secret", default: config.demo.jwtSecret) {
            $0.utf8.count >= 16 ? nil : "must be at least 16 bytes"
        }
        if config.demo.jitter > config.demo.latency {
            r.report("demo.jitter", "must not exceed demo.latency (\(DurationParser.format(config.demo.latency)))")
        }
        if config.demo.basePort + config.demo.instances - 1 > 65535 {
            r.report("demo.base_port", "base_port + instances - 1 must not exceed 65535")
        }

        config.cluster = decodeCluster(top, reader: &r)
        for clash in config.listenerClashes { r.report(clash.key, clash.message) }

        if config.upstreams.isEmpty && !config.demo.enabled {
            r.report("upstreams", "at least one upstream is required when demo.enabled is false")
        }
        // The start would refuse it (``UpstreamSlots``); a host name with several
        // addresses takes a slot per member, which only a lookup can count
        // (``StartupProblems``). Until 2026-12-06 check-config passed 500 upstreams that
        // the start then refused (found by trying it).
        if config.upstreams.count > UpstreamSlots.maxSlots {
            r.report("upstreams", "at most \(UpstreamSlots.maxSlots) upstreams, got \(config.upstreams.count)", node: top.entries["upstreams"])
        }
        return config
    }

    /// A directory the gateway will write to (the request spool): nil when it is one.
    static func writableDirectory(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            return "\(path) is not a directory"
        }
        return FileManager.default.isWritableFile(atPath: path) ? nil : "\(path) is not writable by this process"
    }

    /// A file path the gateway will read (certificates, keys): empty means unset.
    static func readableFile(_ path: String) -> String? {
        path.isEmpty || FileManager.default.isReadableFile(atPath: path) ? nil : "no readable file at \(path)"
    }

    /// `limits.stalled_client_bytes` below this (and not 0) is refused.
    static let minimumStalledClientBytes = 1_048_576

    /// Token rates: one token per 1 000 s at the slowest (a `Retry-After` beyond that
    /// says nothing useful), a billion per second at the fastest.
    static let rateRange = 0.001...1_000_000_000.0
    static func rateCheck(_ rate: Double) -> String? {
        rateRange.contains(rate) ? nil : "must be in 0.001...1000000000 (tokens per second)"
    }

    static func decodeAddressRanges(_ node: Node?, path: String, reader r: inout ConfigReader) -> [AddressRange] {
        decodeList(
            node, path: path, expected: "addresses or CIDR ranges such as 10.0.0.0/8",
            itemProblem: "expected an address or CIDR range such as 10.0.0.0/8 or fd00::/8", reader: &r, parse: AddressRange.parse)
    }

    /// A list of path prefixes, each starting with `/`.
    static func decodePrefixes(_ node: Node?, path: String, reader r: inout ConfigReader) -> [String] {
        decodeList(
            node, path: path, expected: "path prefixes such as [/api/stream]", itemProblem: "a path prefix must start with /",
            reader: &r, parse: { $0.hasPrefix("/") ? $0 : nil })
    }

    /// A list of scalars, each read by `parse` (nil: reported as `itemProblem` under its index).
    static func decodeList<Item>(
        _ node: Node?, path: String, expected: String, itemProblem: String, reader r: inout ConfigReader, parse: (String) -> Item?
    ) -> [Item] {
        r.noteList(path)
        guard let node, !ConfigReader.isNull(node) else { return [] }
        guard let sequence = node.sequence else {
            r.report(path, "expected a list of \(expected)", node: node)
            return []
        }
        var items: [Item] = []
        for (index, item) in sequence.enumerated() {
            guard let text = item.scalar?.string, let value = parse(text) else {
                r.report("\(path)[\(index)]", itemProblem, node: item)
                continue
            }
            items.append(value)
        }
        return items
    }

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

    static func decodeUpstreams(_ node: Node?, reader r: inout ConfigReader) -> [UpstreamConfig] {
        r.noteList("upstreams")
        guard let node, !ConfigReader.isNull(node) else { return [] }
        guard let sequence = node.sequence else {
            r.report("upstreams", "expected a list of upstreams, each with at least url", node: node)
            return []
        }
        var result: [UpstreamConfig] = []
        var seenNames: Set<String> = []
        for (index, item) in sequence.enumerated() {
            let path = "upstreams[\(index)]"
            let table: ConfigReader.Table
            if item.scalar != nil, !ConfigReader.isNull(item) {
                // `- http://10.0.0.5:8080` alone is short for `- { url: "http://10.0.0.5:8080" }`
                // (every other key at its default), as nginx's `server 10.0.0.5:8080;` is one line.
                table = ConfigReader.Table(path: path, entries: ["url": item])
            } else {
                table = r.table(item, path: path, known: ["name", "url", "max_concurrency", "weight", "addresses", "host_header"])
                guard item.mapping != nil else { continue }
            }
            var url: UpstreamURL? = nil
            let urlText = r.string(table, "url", default: "")
            if urlText.isEmpty {
                r.report("\(path).url", "is required", node: item)
            } else {
                switch UpstreamURL.parse(urlText) {
                case .success(let parsed): url = parsed
                case .failure(let failure): r.report("\(path).url", failure.message, node: table.entries["url"])
                }
            }
            let name = r.string(table, "name", default: url?.endpoint.description ?? "upstream-\(index)") {
                $0.isEmpty
                    ? "must not be empty"
                    : $0.contains("#") ? "must not contain \"#\" (it names the members of a host name with several addresses: app, app#2, …)" : nil
            }
            if !seenNames.insert(name).inserted {
                r.report("\(path).name", "duplicate upstream name \"\(name)\"", node: table.entries["name"])
            }
            let maxConcurrency = r.int(table, "max_concurrency", default: 5000, range: 1...10_000_000)
            let weight = r.int(table, "weight", default: 1, range: 1...1000)
            let maxAddresses = r.scalar(
                table, "addresses", default: UpstreamConfig.allAddresses,
                expected: "all, first or a number of addresses (1...\(UpstreamConfig.addressesRange.upperBound))",
                parse: { text in
                    switch text.lowercased() {
                    case "all": UpstreamConfig.allAddresses
                    case "first": 1
                    default: Int(text)
                    }
                }
            ) {
                UpstreamConfig.addressesRange.contains($0)
                    ? nil : "must be all, first or in \(UpstreamConfig.addressesRange.lowerBound)...\(UpstreamConfig.addressesRange.upperBound)"
            }
            let hostHeader = r.scalar(
                table, "host_header", default: UpstreamHostHeader.client,
                expected: "client, upstream or a host[:port] such as api.internal:8080",
                parse: { text in
                    switch text.lowercased() {
                    case "client": .client
                    case "upstream": .upstream
                    default: .fixed(text)
                    }
                }
            ) {
                guard case .fixed(let value) = $0 else { return nil }
                if value.isEmpty { return "must be client, upstream or a host[:port], not empty" }
                let problem = Array(value.utf8).withUnsafeBytes { HostSyntax.problem($0) }
                return problem.map { "must be client, upstream or a host[:port] such as api.internal:8080 (\"\(value)\" \($0))" }
            }
            if let url {
                result.append(
                    UpstreamConfig(
                        name: name, url: url, maxConcurrency: maxConcurrency, weight: weight, maxAddresses: maxAddresses,
                        hostHeader: hostHeader))
            }
        }
        return result
    }
}
