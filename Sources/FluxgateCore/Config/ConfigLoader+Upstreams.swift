import Foundation
import Yams

/// The sections about the upstreams: the list, their health checks, retries, the
/// connection pool, TLS towards them and their addresses' refresh.
extension ConfigLoader {
    /// `upstreams`: a list of URLs or `{url, name, max_concurrency, weight, addresses,
    /// host_header}` tables, each problem under its index.
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

    /// `health_check`, with its `passive` part.
    static func decodeHealthCheck(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> HealthCheckConfig {
        var config = HealthCheckConfig()
        let health = r.table(
            "health_check", in: top, known: ["enabled", "path", "expected_statuses", "interval", "timeout", "rise", "fall", "slow_start", "passive"])
        config.enabled = r.bool(health, "enabled", default: config.enabled)
        config.path = r.string(health, "path", default: config.path) {
            $0.hasPrefix("/") ? nil : "must start with /"
        }
        if let statuses = health.entries["expected_statuses"] {
            let ranges = decodeList(
                statuses, path: "health_check.expected_statuses", expected: "statuses or ranges such as [200-399]",
                itemProblem: "a status (200) or a range (200-399) within 200-599", reader: &r, parse: HealthyStatuses.parse)
            if !ranges.isEmpty {
                config.expectedStatuses = HealthyStatuses(ranges)
            } else if ConfigReader.isNull(statuses) || statuses.sequence?.isEmpty == true {
                r.report("health_check.expected_statuses", "needs at least one status or range, such as [200-399]", node: statuses)
            }
        } else {
            r.noteList("health_check.expected_statuses")
        }
        config.interval = r.duration(health, "interval", default: config.interval)
        config.timeout = r.duration(health, "timeout", default: config.timeout)
        config.rise = r.int(health, "rise", default: config.rise, range: 1...100)
        config.fall = r.int(health, "fall", default: config.fall, range: 1...100)
        config.slowStart = r.duration(health, "slow_start", default: config.slowStart, minimum: .zero)
        if config.timeout > config.interval {
            r.report("health_check.timeout", "must not exceed health_check.interval (\(DurationParser.format(config.interval)))")
        }
        let passive = r.table(
            "passive", in: health, known: ["enabled", "consecutive_failures", "base_ejection", "max_ejection", "max_ejection_percent", "panic_threshold"])
        config.passive.enabled = r.bool(passive, "enabled", default: config.passive.enabled)
        config.passive.consecutiveFailures = r.int(
            passive, "consecutive_failures", default: config.passive.consecutiveFailures, range: 1...10_000)
        config.passive.baseEjection = r.duration(passive, "base_ejection", default: config.passive.baseEjection)
        config.passive.maxEjection = r.duration(passive, "max_ejection", default: config.passive.maxEjection)
        config.passive.maxEjectionPercent = r.double(
            passive, "max_ejection_percent", default: config.passive.maxEjectionPercent
        ) { $0 >= 0 && $0 <= 100 ? nil : "must be in [0, 100] (a percentage; at least one upstream may always be ejected)" }
        config.passive.panicThreshold = r.double(
            passive, "panic_threshold", default: config.passive.panicThreshold
        ) { $0 >= 0 && $0 <= 1 ? nil : "must be in [0, 1]" }
        if config.passive.maxEjection < config.passive.baseEjection {
            r.report(
                "health_check.passive.max_ejection",
                "must not be below health_check.passive.base_ejection (\(DurationParser.format(config.passive.baseEjection)))")
        }
        return config
    }

    /// `retry`.
    static func decodeRetry(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> RetryConfig {
        var config = RetryConfig()
        let retry = r.table("retry", in: top, known: ["enabled", "on_timeout", "budget_percent", "min_concurrent"])
        config.enabled = r.bool(retry, "enabled", default: config.enabled)
        config.onTimeout = r.bool(retry, "on_timeout", default: config.onTimeout)
        config.budgetPercent = r.double(retry, "budget_percent", default: config.budgetPercent) {
            $0 >= 0 && $0 <= 100 ? nil : "must be in [0, 100]"
        }
        config.minConcurrent = r.int(retry, "min_concurrent", default: config.minConcurrent, range: 0...1_000_000)
        return config
    }

    /// `pool`.
    static func decodePool(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> PoolConfig {
        var config = PoolConfig()
        let pool = r.table(
            "pool", in: top,
            known: ["max_idle_per_upstream", "max_connections", "max_connecting", "idle_timeout", "max_requests_per_connection", "max_connection_age"])
        config.maxIdlePerUpstream = r.int(pool, "max_idle_per_upstream", default: config.maxIdlePerUpstream, range: 0...100_000)
        config.maxConnections = r.int(pool, "max_connections", default: config.maxConnections, range: 0...10_000_000)
        config.maxConnecting = r.int(pool, "max_connecting", default: config.maxConnecting, range: 0...100_000)
        config.idleTimeout = r.duration(pool, "idle_timeout", default: config.idleTimeout)
        config.maxRequestsPerConnection = r.int(
            pool, "max_requests_per_connection", default: config.maxRequestsPerConnection, range: 0...Int(Int32.max))
        config.maxConnectionAge = r.duration(pool, "max_connection_age", default: config.maxConnectionAge, minimum: .zero)
        return config
    }

    /// `upstream_tls`.
    static func decodeUpstreamTLS(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> UpstreamTLSConfig {
        var config = UpstreamTLSConfig()
        let upstreamTLS = r.table("upstream_tls", in: top, known: ["verify", "ca_file", "certificate", "key"])
        config.verify = r.bool(upstreamTLS, "verify", default: config.verify)
        config.caFile = r.string(upstreamTLS, "ca_file", default: config.caFile, check: Self.readableFile)
        (config.certificate, config.key) = certificateAndKey(
            upstreamTLS, "certificate", "key", purpose: "a client certificate for https:// upstreams", reader: &r)
        return config
    }

    /// `dns`: a refresh of 0s (off) or at least 1s.
    static func decodeDNS(_ top: ConfigReader.Table, reader r: inout ConfigReader) -> DNSConfig {
        var config = DNSConfig()
        let dns = r.table("dns", in: top, known: ["refresh", "family"])
        config.refresh = r.duration(dns, "refresh", default: config.refresh, minimum: .zero)
        config.family = r.scalar(
            dns, "family", default: config.family, expected: "v4_preferred, auto, v4_only or v6_only",
            parse: { AddressFamilyPreference(rawValue: $0.lowercased()) })
        if config.refresh != .zero && config.refresh < .seconds(1) {
            r.report("dns.refresh", "must be 0s (off) or at least 1s")
        }
        return config
    }
}
