/// The environment's overrides: those that set a key, and those that name none.
extension ConfigLoader {
    /// The variable of every scalar key, and the names list keys would have (→ key path):
    /// found once by reading an empty file, which looks every scalar key up (the names do
    /// not depend on the environment's values).
    static let environmentNames: (scalars: Set<String>, lists: [String: String]) = {
        var reader = ConfigReader(environment: [:])
        _ = decode(nil, reader: &reader)
        return (reader.consulted, reader.listKeys)
    }()

    /// The `FLUXGATE_*` variables in `environment` that override a configuration key,
    /// sorted: what a printed configuration owes to the environment rather than the file.
    public static func environmentOverrides(_ environment: [String: String]) -> [String] {
        environment.keys.filter { environmentNames.scalars.contains($0) }.sorted()
    }

    /// `FLUXGATE_*` variables that look meant for the configuration but name no key: a
    /// near miss of one (`FLUXGATE_TIMEOUT_IDLE`), one whose first word is a section's
    /// (`FLUXGATE_LIMITS_BODY`), or a key set in the file only (`FLUXGATE_UPSTREAMS`). A
    /// misspelt override silently left at its default is how outages start, as a misspelt
    /// key is; but other software may have `FLUXGATE_` variables of its own, so these are
    /// warnings (`check-config` and the start print them), not errors.
    public static func environmentWarnings(_ environment: [String: String]) -> [String] {
        let known = environmentNames.scalars
        let prefix = "FLUXGATE_"
        let sections = Set(known.map { $0.dropFirst(prefix.count).split(separator: "_").first.map(String.init) ?? "" })
        // (The upgrade's own variables are the process's, not the configuration's.)
        let names = environment.keys.filter { $0.hasPrefix(prefix) && !known.contains($0) && !InheritedListeners.variables.contains($0) }
        return names.sorted().compactMap { name in
            let rest = String(name.dropFirst(prefix.count))
            if let key = environmentNames.lists[name] { return "\(name) is set, but \(key) is a list, set in the config file only: the variable is ignored" }
            let near = ConfigReader.closest(to: name, in: Array(known).sorted())
            guard near != nil || sections.contains(rest.split(separator: "_").first.map(String.init) ?? "") else { return nil }
            return "\(name) is set but names no configuration key and is ignored\(near.map { "; did you mean \($0)?" } ?? "")"
        }
    }
}
