import Yams

/// Walks a composed YAML tree, reading typed values at known key paths.
///
/// Codable stops at the first problem and cannot see unknown keys; an operator wants
/// every error with its key path in one `check-config` run, so the tree is walked by
/// hand here (the YAML itself is parsed by Yams). Environment variables override
/// scalar keys: `admission.target_utilization` is read from
/// `FLUXGATE_ADMISSION_TARGET_UTILIZATION` when that variable is set.
struct ConfigReader {
    private(set) var errors: [ConfigError] = []
    let environment: [String: String]
    /// Every `FLUXGATE_*` name a scalar key was looked up under (set or not).
    private(set) var consulted: Set<String> = []
    /// The names list keys would have, which no variable sets: name → key path.
    private(set) var listKeys: [String: String] = [:]

    /// `path` is a list: read from the file only.
    mutating func noteList(_ path: String) { listKeys[Self.environmentName(for: path)] = path }

    init(environment: [String: String]) {
        self.environment = environment
    }

    /// A mapping node with the keys it may hold; unknown keys are reported here.
    struct Table {
        let path: String
        let entries: [String: Node]

        func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    }

    mutating func report(_ path: String, _ message: String, node: Node? = nil) {
        errors.append(ConfigError(path: path, message: message, line: node?.mark.map { $0.line }))
    }

    /// The mapping under `key` of `parent` (path `parent.key`), as `table(_:path:known:)` reads it.
    mutating func table(_ key: String, in parent: Table, known: [String]) -> Table {
        table(parent.entries[key], path: parent.childPath(key), known: known)
    }

    /// Reads `node` as a mapping whose keys must come from `known`.
    mutating func table(_ node: Node?, path: String, known: [String]) -> Table {
        guard let node, !Self.isNull(node) else { return Table(path: path, entries: [:]) }
        guard let mapping = node.mapping else {
            report(path, "expected a mapping with keys \(known.joined(separator: ", "))", node: node)
            return Table(path: path, entries: [:])
        }
        var entries: [String: Node] = [:]
        for pair in mergedPairs(mapping, path: path) {
            guard let key = pair.key.string else {
                report(path, "keys must be strings", node: pair.key)
                continue
            }
            // Extension fields, as in Compose files: a place at the top level for YAML
            // anchors that upstreams merge (`x-defaults: &defaults`), never read.
            if path.isEmpty && key.hasPrefix("x-") { continue }
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            if !known.contains(key) {
                let hint = Self.closest(to: key, in: known).map { "; did you mean \"\($0)\"?" } ?? ""
                report(keyPath, "unknown key\(hint)\(pair.merged ? " (merged in by <<)" : "")", node: pair.key)
                continue
            }
            if entries[key] != nil {
                // A key merged in by `<<` gives way to the mapping's own, and to an
                // earlier merged mapping's (YAML 1.1's merge key type).
                if pair.merged { continue }
                report(keyPath, "duplicate key", node: pair.key)
            }
            entries[key] = pair.value
        }
        return Table(path: path, entries: entries)
    }

    /// The pairs of `mapping` with YAML merge keys applied (`<<: *defaults`, or a list of
    /// such: the merge key type of YAML 1.1, which libyaml and so Yams leave to the
    /// reader): its own pairs first, then each merged mapping's in order, itself merged
    /// the same way. The reader keeps the first of each key, so the mapping's own win,
    /// then the earlier merged mapping's. Until 2026-12-07 `<<` was refused as an
    /// unknown key (found by writing an upstream list the way Compose files are written).
    ///
    /// Aliases repeated inside merges multiply (ten mappings each merging the one before
    /// ten times over: 10⁸ pairs from eight short lines — found by trying it: 950 MB and
    /// no answer after 20 s), so a mapping's merges may bring in at most
    /// ``maxMergedPairs`` pairs; beyond, the merge is refused by name.
    mutating func mergedPairs(_ mapping: Node.Mapping, path: String) -> [Pair] {
        var budget = Self.maxMergedPairs
        if let pairs = mergedPairs(mapping, path: path, budget: &budget) { return pairs }
        report(
            Self.mergePath(path), "merges bring in more than \(Self.maxMergedPairs) keys (an alias repeated inside merges?)",
            node: mapping.first { Self.isMergeKey($0.key) }?.key)
        return mapping.filter { !Self.isMergeKey($0.key) }.map { Pair(key: $0.key, value: $0.value, merged: false) }
    }

    /// One key and value of a mapping; `merged`: brought in by a merge key.
    struct Pair {
        let key: Node
        let value: Node
        let merged: Bool
    }

    /// Pairs a mapping's merge keys may bring in (nested merges count at every level).
    static let maxMergedPairs = 10_000

    /// A merge key: `<<` written plain (quoted, it is a key like any other).
    static func isMergeKey(_ key: Node) -> Bool { key.scalar?.style == .plain && key.string == "<<" }

    /// The key path errors about the merge keys of the mapping at `path` are given.
    static func mergePath(_ path: String) -> String { path.isEmpty ? "<<" : "\(path).<<" }

    /// Nil when the merges would bring in more than `budget` pairs.
    private mutating func mergedPairs(_ mapping: Node.Mapping, path: String, budget: inout Int) -> [Pair]? {
        var own: [Pair] = []
        var merged: [Pair] = []
        for (keyNode, value) in mapping {
            guard Self.isMergeKey(keyNode) else {
                own.append(Pair(key: keyNode, value: value, merged: false))
                continue
            }
            let sources = value.mapping.map { [$0] } ?? value.sequence?.compactMap(\.mapping)
            guard let sources, sources.count == (value.sequence?.count ?? 1) else {
                report(Self.mergePath(path), "a merge key takes a mapping or a list of mappings, such as <<: *defaults", node: keyNode)
                continue
            }
            for source in sources {
                guard let pairs = mergedPairs(source, path: path, budget: &budget) else { return nil }
                budget -= pairs.count
                if budget < 0 { return nil }
                merged += pairs.map { Pair(key: $0.key, value: $0.value, merged: true) }
            }
        }
        return own + merged
    }

    /// Reads a scalar, preferring the environment override, and converts it with `parse`.
    /// `expected` names the accepted form in the error; `check` may refuse a parsed value.
    mutating func scalar<T>(
        _ table: Table, _ key: String, default defaultValue: T, expected: String,
        parse: (String) -> T?, check: (T) -> String? = { _ in nil }
    ) -> T {
        let path = table.childPath(key)
        let envName = Self.environmentName(for: path)
        consulted.insert(envName)
        let text: String
        var node: Node? = nil
        if let override = environment[envName] {
            text = override
        } else if let value = table.entries[key], !Self.isNull(value) {
            guard let string = value.scalar?.string else {
                report(path, "expected \(expected), got a \(value.mapping != nil ? "mapping" : "list")", node: value)
                return defaultValue
            }
            text = string
            node = value
        } else {
            return defaultValue
        }
        let source = node == nil ? " (from \(envName))" : ""
        guard let parsed = parse(text) else {
            report(path, "expected \(expected), got \"\(text)\"\(source)", node: node)
            return defaultValue
        }
        if let problem = check(parsed) {
            report(path, "\(problem), got \"\(text)\"\(source)", node: node)
            return defaultValue
        }
        return parsed
    }

    mutating func int(_ table: Table, _ key: String, default value: Int, range: ClosedRange<Int>) -> Int {
        scalar(table, key, default: value, expected: "an integer", parse: { Int($0) }) {
            range.contains($0) ? nil : "must be in \(range.lowerBound)...\(range.upperBound)"
        }
    }

    /// A `*_bytes` key: bytes, or with a unit (`64k`, `1MiB`; ``ByteSizeParser``).
    mutating func bytes(_ table: Table, _ key: String, default value: Int, range: ClosedRange<Int>) -> Int {
        scalar(table, key, default: value, expected: "a size in bytes such as 65536, 64k or 1MiB", parse: ByteSizeParser.parse) {
            range.contains($0) ? nil : "must be in \(range.lowerBound)...\(range.upperBound)"
        }
    }

    mutating func double(_ table: Table, _ key: String, default value: Double, check: @escaping (Double) -> String?)
        -> Double
    {
        scalar(table, key, default: value, expected: "a number", parse: { Double($0).flatMap { $0.isFinite ? $0 : nil } }, check: check)
    }

    mutating func bool(_ table: Table, _ key: String, default value: Bool) -> Bool {
        scalar(table, key, default: value, expected: "true or false") { text in
            switch text.lowercased() {
            case "true", "yes", "on", "1": true
            case "false", "no", "off", "0": false
            default: nil
            }
        }
    }

    /// Durations are bounded above too (a week by default): every timer the gateway
    /// arms must fit NIO's nanosecond deadlines with room to spare.
    mutating func duration(
        _ table: Table, _ key: String, default value: Duration, minimum: Duration = .milliseconds(1),
        maximum: Duration = .seconds(7 * 86_400)
    ) -> Duration {
        scalar(table, key, default: value, expected: "a duration such as 500ms, 2s or 1m", parse: DurationParser.parse) {
            if $0 < minimum { return "must be at least \(DurationParser.format(minimum))" }
            if $0 > maximum { return "must be at most \(DurationParser.format(maximum))" }
            return nil
        }
    }

    mutating func string(_ table: Table, _ key: String, default value: String, check: (String) -> String? = { _ in nil })
        -> String
    {
        scalar(table, key, default: value, expected: "a string", parse: { $0 }, check: check)
    }

    mutating func endpoint(_ table: Table, _ key: String, default value: SocketEndpoint) -> SocketEndpoint {
        scalar(table, key, default: value, expected: "host:port such as 0.0.0.0:8080", parse: SocketEndpoint.parseListen)
    }

    mutating func storeFailurePolicy(_ table: Table, default value: StoreFailurePolicy) -> StoreFailurePolicy {
        scalar(table, "on_store_failure", default: value, expected: "static_share or closed", parse: { StoreFailurePolicy(rawValue: $0.lowercased()) })
    }

    static func environmentName(for path: String) -> String {
        "FLUXGATE_" + String(path.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    static func isNull(_ node: Node) -> Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
            return true
        }
        return false
    }

    /// The known key within edit distance 2 of a misspelt one, for "did you mean".
    static func closest(to key: String, in known: [String]) -> String? {
        known.map { ($0, editDistance(Array(key), Array($0))) }
            .filter { $0.1 <= 2 }
            .min { $0.1 < $1.1 }?.0
    }

    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
