/// One problem found in a configuration, with the key path it belongs to.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Dotted key path with list indices, e.g. `upstreams[1].url`; empty for the file itself.
    public var path: String
    public var message: String
    /// 1-based line in the YAML file, when known.
    public var line: Int?

    public init(path: String, message: String, line: Int? = nil) {
        self.path = path
        self.message = message
        self.line = line
    }

    public var description: String {
        let location = line.map { " (line \($0))" } ?? ""
        return path.isEmpty ? "\(message)\(location)" : "\(path)\(location): \(message)"
    }
}

/// All problems found in one load; thrown by ``ConfigLoader`` so that an operator sees
/// every mistake at once instead of fixing them one run at a time.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public var description: String {
        errors.map { "  - \($0)" }.joined(separator: "\n")
    }
}
