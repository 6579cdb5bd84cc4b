/// The access log (`access_log`): one line per finished exchange, logfmt or JSON.
public struct AccessLogConfig: Sendable, Equatable {
    public enum Format: String, Sendable { case logfmt, json }
    public var enabled = false
    public var format = Format.logfmt
    /// Fraction of requests logged, (0, 1].
    public var sample = 1.0
    /// `-` for standard output, else a file opened for appending (reopened on reload).
    public var path = "-"
    /// Lines are written out at least this often (and whenever 64 KiB wait); `0` writes
    /// each line as its request ends. Envoy's access log files: 1 s.
    public var flushInterval: Duration = .seconds(1)
    public init() {}
}
