import Foundation
/// The whole gateway configuration, as typed values.
///
/// Built once per load (and, later, per reload) by ``ConfigLoader``; nothing on the
/// request path looks a key up by name. Every field has the default that applies when
/// the key is absent, and `gateway.conf.example` at the repository root lists them all.
public struct GatewayConfig: Sendable, Equatable {
    /// Data listener (`listen`). Default `0.0.0.0:8080`.
    public var listen = SocketEndpoint(host: "0.0.0.0", port: 8080)
    /// Admin listener for metrics, stats and the gateway's own health (`admin_listen`).
    public var adminListen = SocketEndpoint(host: "127.0.0.1", port: 9090)
    /// Event loop threads (`workers`); 0 means one per core, as nginx's `worker_processes auto`.
    public var workers = 0
    /// The application replicas. Empty with `demo.enabled` means the built-in demo instances.
    public var upstreams: [UpstreamConfig] = []
    /// How requests are spread over the ready upstreams (`balancer`). Default round_robin.
    public var balancer = BalancerChoice.roundRobin
    public var healthCheck = HealthCheckConfig()
    public var retry = RetryConfig()
    public var admission = AdmissionConfig()
    public var rateLimit = RateLimitConfig()
    public var timeouts = TimeoutsConfig()
    public var limits = LimitsConfig()
    public var pool = PoolConfig()
    /// Upstream host names looked up again while running (`dns`).
    public var dns = DNSConfig()
    public var demo = DemoConfig()
    /// One line per request (`access_log`); off by default, as in Envoy and HAProxy.
    public var accessLog = AccessLogConfig()
    /// The application log's level (`log_level`); a reload changes it.
    public var logLevel = LogLevel.info
    /// The application log's line format (`log_format`): swift-log's text lines, or one
    /// JSON object per line for log collectors; a reload changes it.
    public var logFormat = LogFormat.text
    /// How long a graceful stop (SIGTERM/SIGINT) waits for requests in flight (`drain_timeout`).
    public var drainTimeout: Duration = .seconds(30)
    /// Reload when the config file changes (`reload.watch`), checked every `reload.interval`.
    public var reload = ReloadConfig()
    /// Peers whose `X-Forwarded-For` is believed (`trusted_proxies`, CIDRs): from
    /// them the client address is the right-most untrusted entry of the header and
    /// the header is kept (appended to); from anyone else it is replaced. Default
    /// empty: no peer is trusted.
    public var trustedProxies: [AddressRange] = []
    /// TLS termination on the data listener (`tls`); on when a certificate is set.
    public var tls = TLSConfig()
    /// How the gateway checks `https://` upstreams (`upstream_tls`).
    public var upstreamTLS = UpstreamTLSConfig()
    /// Which parser reads client requests (`parser`): the gateway's own (default) or
    /// NIOHTTP1's llhttp in front of it, the fallback (docs/CONFIGURATION.md).
    /// Connections accepted after a reload use the new choice.
    public var parser = RequestParserChoice.fluxgate
    /// A client that closes its side while its answer has not started gives up its
    /// request (`abort_on_client_close`): out of the queue, or its upstream connection
    /// closed and its slot freed — nginx's `proxy_ignore_client_abort off`, Envoy's and
    /// Pingora's behaviour. A full close and a half-close look the same (a FIN), so
    /// `false` serves half-closed clients instead (HAProxy without `abortonclose`).
    public var abortOnClientClose = true
    /// Several replicas sharing one capacity and one global rate through Redis
    /// (`cluster`); off unless the section is present (docs/SCALING.md).
    public var cluster = ClusterConfig()

    public init() {}

    /// `limits.max_requests_per_connection` and `timeouts.max_connection_age` as the
    /// pure logic takes them.
    public var connectionReuse: ConnectionReuse.Limits {
        .init(maxRequests: limits.maxRequestsPerConnection, maxAge: timeouts.maxConnectionAge)
    }

    /// Top-level sections whose values differ between `old` and `self` (for the reload log).
    public func changedSections(from old: GatewayConfig) -> [String] {
        var keys: [String] = []
        if upstreams != old.upstreams { keys.append("upstreams") }
        if balancer != old.balancer { keys.append("balancer") }
        if healthCheck != old.healthCheck { keys.append("health_check") }
        if retry != old.retry { keys.append("retry") }
        if admission != old.admission { keys.append("admission") }
        if rateLimit != old.rateLimit { keys.append("rate_limit") }
        if timeouts != old.timeouts { keys.append("timeouts") }
        if limits != old.limits { keys.append("limits") }
        if pool != old.pool { keys.append("pool") }
        if dns != old.dns { keys.append("dns") }
        if accessLog != old.accessLog { keys.append("access_log") }
        if logLevel != old.logLevel { keys.append("log_level") }
        if logFormat != old.logFormat { keys.append("log_format") }
        if drainTimeout != old.drainTimeout { keys.append("drain_timeout") }
        if reload != old.reload { keys.append("reload") }
        if trustedProxies != old.trustedProxies { keys.append("trusted_proxies") }
        if tls != old.tls { keys.append("tls") }
        if upstreamTLS != old.upstreamTLS { keys.append("upstream_tls") }
        if parser != old.parser { keys.append("parser") }
        if abortOnClientClose != old.abortOnClientClose { keys.append("abort_on_client_close") }
        if demo != old.demo { keys.append("demo") }
        return keys
    }

    /// The keys a reload cannot change (the listeners, the event loops, the embedded
    /// demo): their paths where `self` and `other` differ.
    public func restartOnlyDifferences(_ other: GatewayConfig) -> [String] {
        var keys: [String] = []
        if listen != other.listen { keys.append("listen") }
        if adminListen != other.adminListen { keys.append("admin_listen") }
        if workers != other.workers { keys.append("workers") }
        if cluster != other.cluster { keys.append("cluster") }
        if limits.clientIPv6Prefix != other.limits.clientIPv6Prefix { keys.append("limits.client_ipv6_prefix") }
        if runsEmbeddedDemo != other.runsEmbeddedDemo || (runsEmbeddedDemo && demo != other.demo) { keys.append("demo") }
        return keys
    }

    /// The upstreams the gateway proxies to: the configured list, or, when it is empty
    /// and the demo is enabled, one entry per in-process demo instance.
    public var effectiveUpstreams: [UpstreamConfig] {
        if !upstreams.isEmpty || !demo.enabled { return upstreams }
        return (0..<demo.instances).map { index in
            // The demo instance's capacity is its "max CCU": admission sizes S from it.
            UpstreamConfig(
                name: "demo-\(DemoConfig.instanceName(index))",
                url: UpstreamURL(endpoint: demo.endpoint(index)),
                maxConcurrency: demo.capacity
            )
        }
    }

    /// Whether the in-process demo upstreams are started: only for the embedded
    /// default, i.e. when no upstream is configured.
    public var runsEmbeddedDemo: Bool { upstreams.isEmpty && demo.enabled }

    /// Two of this process's listeners on one port of overlapping addresses — `listen`,
    /// `admin_listen` and, when they run, the embedded demo's upstreams: the second bind
    /// would fail at start with "address already in use", after `check-config` said OK
    /// (until 2026-12-06). Each clash is reported at the key of the later listener.
    public var listenerClashes: [(key: String, message: String)] {
        var listeners = [("listen", listen), ("admin_listen", adminListen)]
        if runsEmbeddedDemo {
            for index in 0..<demo.instances {
                listeners.append(("demo.base_port", demo.endpoint(index)))
            }
        }
        var clashes: [(key: String, message: String)] = []
        for (later, (key, endpoint)) in listeners.enumerated() {
            guard let (otherKey, other) = listeners[..<later].first(where: { $0.1.sharesPort(with: endpoint) }) else { continue }
            let what = key == "demo.base_port" ? "the embedded demo upstream on \(endpoint)" : "\(endpoint)"
            clashes.append((key, "\(what) takes the port of \(otherKey) (\(other)): each listener needs a port of its own"))
        }
        return clashes
    }
}

/// swift-log's levels, named as in the config file.
/// `parser`: `fluxgate` (``RequestHeadParser`` reads the client's bytes) or `llhttp`
/// (NIOHTTP1's decoder reads them first; its output is then read as usual).
/// `balancer`: smooth weighted round-robin (the default), or `least_requests` — of the
/// round-robin's next two picks, the one with fewer requests in flight on the event loop.
public enum BalancerChoice: String, Sendable, CaseIterable {
    case roundRobin = "round_robin"
    case leastRequests = "least_requests"
}

public enum RequestParserChoice: String, Sendable, CaseIterable {
    case fluxgate, llhttp
}

public enum LogLevel: String, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

public enum LogFormat: String, Sendable, CaseIterable {
    case text, json

    /// The format the environment's override of `log_format` (`FLUXGATE_LOG_FORMAT`, by
    /// the loader's naming rule) names, if it names one — for the lines logged before the
    /// configuration is read; a wrong value is reported when it is.
    public static func overridden(in environment: [String: String]) -> LogFormat? {
        environment[environmentVariable].flatMap { LogFormat(rawValue: $0.lowercased()) }
    }

    /// `FLUXGATE_LOG_FORMAT`.
    public static let environmentVariable = ConfigReader.environmentName(for: "log_format")
}

/// Upstream host names are resolved at start and at each reload that changes an
/// upstream, and again every `refresh` while running (`dns`): an upstream whose name
/// comes to point elsewhere (a recreated Service, a moved instance) is followed without
/// a reload, as Envoy's `STRICT_DNS` clusters and HAProxy's `resolvers` do. One address
/// per upstream (the best by `family`; it stays while the name still lists it); a
/// lookup that fails keeps the last address. Upstreams written as IP addresses are
/// never looked up.
public struct DNSConfig: Sendable, Equatable {
    /// 0 turns it off (open-source nginx's behaviour). Default 30s.
    public var refresh: Duration = .seconds(30)
    /// Which of a name's addresses to use: `v4_preferred` (default: an IPv4 address
    /// when the name has one, so `localhost` means 127.0.0.1 as most servers listen),
    /// `auto` (the resolver's order, IPv6 first on most systems), `v4_only`, `v6_only`.
    /// See ``AddressFamilyPreference``.
    public var family: AddressFamilyPreference = .v4Preferred
    public init() {}
}

public struct ReloadConfig: Sendable, Equatable {
    public var watch = true
    public var interval: Duration = .seconds(2)
    public init() {}
}
