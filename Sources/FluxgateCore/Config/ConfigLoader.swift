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
        "timeouts", "limits", "trusted_proxies", "tls", "upstream_tls", "pool", "dns", "access_log", "log_level", "log_format", "drain_timeout", "reload", "demo", "parser", "cluster",
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

    /// The whole file: the top-level scalars here, each section by its decoder
    /// (ConfigLoader+Sections.swift, ConfigLoader+Upstreams.swift), then the rules across
    /// sections.
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

        config.healthCheck = decodeHealthCheck(top, reader: &r)
        config.retry = decodeRetry(top, reader: &r)
        config.admission = decodeAdmission(top, reader: &r)
        config.rateLimit = decodeRateLimit(top, reader: &r)
        config.timeouts = decodeTimeouts(top, reader: &r)
        config.limits = decodeLimits(top, reader: &r)
        config.trustedProxies = decodeAddressRanges(top.entries["trusted_proxies"], path: "trusted_proxies", reader: &r)
        config.tls = decodeTLS(top, reader: &r)
        config.upstreamTLS = decodeUpstreamTLS(top, reader: &r)
        config.pool = decodePool(top, reader: &r)
        config.accessLog = decodeAccessLog(top, reader: &r)
        config.logLevel = r.scalar(
            top, "log_level", default: config.logLevel, expected: "trace, debug, info, notice, warning, error or critical",
            parse: { LogLevel(rawValue: $0.lowercased()) })
        config.logFormat = r.scalar(
            top, "log_format", default: config.logFormat, expected: "text or json", parse: { LogFormat(rawValue: $0.lowercased()) })
        config.drainTimeout = r.duration(top, "drain_timeout", default: config.drainTimeout, minimum: .zero)
        config.balancer = r.scalar(
            top, "balancer", default: config.balancer, expected: "round_robin or least_requests",
            parse: { BalancerChoice(rawValue: $0.lowercased()) })
        config.parser = r.scalar(
            top, "parser", default: config.parser, expected: "fluxgate or llhttp", parse: { RequestParserChoice(rawValue: $0.lowercased()) })
        config.abortOnClientClose = r.bool(top, "abort_on_client_close", default: config.abortOnClientClose)
        config.dns = decodeDNS(top, reader: &r)
        config.reload = decodeReload(top, reader: &r)
        config.demo = decodeDemo(top, reader: &r)
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
}
