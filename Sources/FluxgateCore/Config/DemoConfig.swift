/// The built-in demo upstreams (`demo`), started when no upstream is configured.
public struct DemoConfig: Sendable, Equatable {
    /// Start the demo instances when no upstream is configured. Default true.
    public var enabled = true
    /// How many instances. Default 3.
    public var instances = 3
    /// First port; instance i listens on base_port + i. Default 9001.
    public var basePort = 9001
    /// Requests each instance serves concurrently at full speed; beyond it they share
    /// the instance (latency grows with load). Readiness fails at 90 %. Default 5000.
    public var capacity = 5000
    /// Mean service time per request; 0 answers at once. Default 0ms.
    public var latency: Duration = .zero
    /// Service time varies uniformly within ± this. Default 0ms.
    public var jitter: Duration = .zero
    /// Refuse with 503 + Retry-After beyond this many in flight; 0 never refuses. Default 0.
    public var maxInFlight = 0
    /// Start every instance with its health check failing. Default false.
    public var failHealth = false
    /// HS256 secret for demo login tokens. The default is public: demo use only.
    public var jwtSecret = "fluxor-demo-insecure-secret"
    public init() {}

    /// Where instance `index` listens: loopback, `base_port + index` (the gateway's
    /// upstream for it, and a port no other listener of the process may take).
    public func endpoint(_ index: Int) -> SocketEndpoint {
        SocketEndpoint(host: "127.0.0.1", port: basePort + index)
    }

    /// `a`, `b`, `c`, …, `z`, then `i26`, `i27`, ….
    public static func instanceName(_ index: Int) -> String {
        index < 26 ? String(UnicodeScalar(UInt8(97 + index))) : "i\(index)"
    }
}
