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

extension SocketEndpoint {
    /// Whether binding both would collide: one port (not 0, which asks the kernel for a
    /// free one), and the same host or a wildcard (`0.0.0.0`, `::`) on either side.
    func sharesPort(with other: SocketEndpoint) -> Bool {
        guard port == other.port, port != 0 else { return false }
        let wildcards: Set<String> = ["0.0.0.0", "::", "[::]"]
        return host == other.host || wildcards.contains(host) || wildcards.contains(other.host)
    }
}

/// One application replica (`upstreams[i]`).
public struct UpstreamConfig: Sendable, Equatable {
    /// A name for logs and metrics; defaults to `host:port`.
    public var name: String
    /// `http://host:port` of the replica.
    public var url: UpstreamURL
    /// The replica's "max CCU": concurrent requests it can hold (admission input). Default 5000.
    public var maxConcurrency: Int
    /// Smooth weighted round-robin weight, 1...1000. Default 1.
    public var weight: Int
    /// `addresses`: how many of a host name's addresses become members of this upstream,
    /// each a replica with this entry's `max_concurrency` and `weight` (a headless
    /// Kubernetes Service lists one per ready pod). `all` (the default) is
    /// ``allAddresses``; `first` is 1 — one address, the best by `dns.family`, as an
    /// upstream behind a virtual IP needs. An upstream written as an IP address has one
    /// member whatever this says. See ``UpstreamMembers``.
    public var maxAddresses: Int
    /// `host_header`: the `Host` this upstream's requests carry (``UpstreamHostHeader``).
    public var hostHeader: UpstreamHostHeader

    /// What `addresses: all` means: at most this many members per name. nginx takes
    /// every address a name has at start; the bound keeps one name from filling the
    /// process's ``UpstreamSlots/maxSlots`` (a member's slot is kept for its index, so a
    /// name uses at most this many slots however often its addresses change).
    public static let allAddresses = 32
    /// `addresses: N`'s bounds.
    public static let addressesRange = 1...128

    public init(
        name: String, url: UpstreamURL, maxConcurrency: Int = 5000, weight: Int = 1, maxAddresses: Int = allAddresses,
        hostHeader: UpstreamHostHeader = .client
    ) {
        self.name = name
        self.url = url
        self.maxConcurrency = maxConcurrency
        self.weight = weight
        self.maxAddresses = maxAddresses
        self.hostHeader = hostHeader
    }
}

/// `upstreams[i].host_header`: which `Host` an upstream's requests (and its health
/// probes) carry. The client's own `Host` goes on in `X-Forwarded-Host` whatever this says.
///
/// An upstream that routes by `Host` — a virtual host of nginx or Apache, an ingress, a
/// platform's router — answers a request for the gateway's name with its default site
/// or a 404; it needs its own name (`upstream`) or a fixed one. nginx sends its
/// `proxy_pass` host by default (`$proxy_host`); HAProxy and Envoy pass the client's,
/// as Fluxgate does by default (apps build links and redirects from it).
public enum UpstreamHostHeader: Sendable, Equatable {
    /// The client's `Host` (the default).
    case client
    /// The upstream URL's host, with its port unless it is the scheme's default
    /// (`http://api.internal:8080` → `api.internal:8080`, `https://api.internal` →
    /// `api.internal`), as nginx's `$proxy_host`.
    case upstream
    /// This `host[:port]`, for every request and probe.
    case fixed(String)

    /// The `Host` value requests to `url` carry, or nil for the client's own.
    public func value(for url: UpstreamURL) -> String? {
        switch self {
        case .client:
            return nil
        case .upstream:
            return url.endpoint.port == (url.tls ? 443 : 80) ? url.endpoint.hostLiteral : url.endpoint.description
        case .fixed(let value):
            return value
        }
    }
}

/// Active and passive health checking (`health_check`), see ``UpstreamHealth``.
public struct HealthCheckConfig: Sendable, Equatable {
    /// Active probes on. Default true.
    public var enabled = true
    /// Path probed with `GET`. Default `/health`.
    public var path = "/health"
    /// Probe answers that count as healthy (``HealthyStatuses``). Default 200-399.
    public var expectedStatuses = HealthyStatuses.standard
    /// Time between probes. Default 2s.
    public var interval: Duration = .seconds(2)
    /// Probe timeout. Default 1s.
    public var timeout: Duration = .seconds(1)
    /// Consecutive successes that bring an upstream up. Default 2.
    public var rise = 2
    /// Consecutive failures that take an upstream down. Default 3.
    public var fall = 3
    /// A returning upstream's weight and capacity ramp up over this long. Default 0s (off).
    public var slowStart: Duration = .zero
    /// Passive checks from real traffic (`health_check.passive`).
    public var passive = PassiveHealthConfig()
    public init() {}

    /// The soonest a down upstream can be back, for `Retry-After` on
    /// 503 `no_healthy_upstream`: `rise` probes at `interval` (2 × 2 s = 4 s by
    /// default); without active checks, the first ejection's cool-down.
    public var recoveryEstimate: Duration {
        enabled ? interval * rise : passive.baseEjection
    }

    /// The thresholds the pure health types decide with.
    public var policy: HealthPolicy {
        var policy = HealthPolicy()
        policy.activeEnabled = enabled
        policy.rise = rise
        policy.fall = fall
        policy.slowStart = slowStart
        policy.passiveEnabled = passive.enabled
        policy.consecutiveFailures = passive.consecutiveFailures
        policy.baseEjection = passive.baseEjection
        policy.maxEjection = passive.maxEjection
        policy.maxEjectionPercent = passive.maxEjectionPercent
        policy.panicThreshold = passive.panicThreshold
        return policy
    }
}

/// Passive ejection (`health_check.passive`), Envoy's outlier detection in small.
public struct PassiveHealthConfig: Sendable, Equatable {
    /// Default true.
    public var enabled = true
    /// Failed requests in a row (connect failure, reset, timeout, 5xx) that eject. Default 5.
    public var consecutiveFailures = 5
    /// First ejection's cool-down; the n-th lasts n times this. Default 30s.
    public var baseEjection: Duration = .seconds(30)
    /// Longest cool-down. Default 300s.
    public var maxEjection: Duration = .seconds(300)
    /// At most this percentage of the upstreams ejected at once, but always one
    /// (Envoy's `max_ejection_percent`). Default 10.
    public var maxEjectionPercent = 10.0
    /// Below this share of probe-healthy upstreams left, ejections are ignored. Default 0.5.
    public var panicThreshold = 0.5
    public init() {}
}

/// Retries of idempotent requests that an upstream answered 502/503/504, cut off
/// before the response head, or left without one for `timeouts.upstream_header` (`retry`).
public struct RetryConfig: Sendable, Equatable {
    /// Default true.
    public var enabled = true
    /// Also retry (once, on another upstream) when the upstream sent no response head
    /// within `timeouts.upstream_header` — nginx's default `proxy_next_upstream error
    /// timeout`, HAProxy's `retry-on response-timeout`. Default true.
    public var onTimeout = true
    /// Retries in progress may be at most this share of the requests in flight. Default 20.
    public var budgetPercent = 20.0
    /// …but at least this many at once, so a quiet gateway can still retry. Default 3.
    public var minConcurrent = 3
    public init() {}
}

/// The 67 % utilization rule (`admission`), see ``AdmissionController``.
public struct AdmissionConfig: Sendable, Equatable {
    /// Share of capacity admitted as in-flight slots, in (0, 1]. Default 0.67.
    public var targetUtilization = 0.67
    /// Longest a request may wait in the queue. Default 1s.
    public var queueTimeout: Duration = .seconds(1)
    /// `fifo` (fair) or `lifo` (freshest first: under sustained overload the requests
    /// most likely still wanted). Default fifo.
    public var queueDiscipline = AdmissionController.Discipline.fifo
    /// Standing-queue rule (``AdmissionController``): once every wait has been at least
    /// this long for `queueDelayInterval`, waits are held to it. 0 turns it off. Default 5ms.
    public var queueDelayTarget: Duration = .milliseconds(5)
    /// Default 100ms.
    public var queueDelayInterval: Duration = .milliseconds(100)
    /// Count what would be shed, shed nothing. Default false.
    public var dryRun = false
    /// Utilization (running + queued) / capacity at which each class is shed.
    /// Defaults low 0.8, normal 0.95, critical 1.0.
    public var shedAt: [Priority: Double] = [.low: 0.8, .normal: 0.95, .critical: 1.0]
    /// Route prefixes and their class; longest prefix wins, others are `normal`.
    public var routes: [RoutePriority] = []
    public init() {}

    /// The class of a request target: the longest route prefix that matches its
    /// normalised path at a segment boundary (``RequestTarget``), else normal. Without
    /// routes this costs nothing per request.
    public func priority(forTarget target: String) -> Priority {
        // The common plain path is matched in place; only one that needs normalising builds a String.
        guard !routes.isEmpty, let path = RequestTarget.routingPath(target) else { return .normal }
        return priority(forPath: path.utf8)
    }

    /// As above, on the target's bytes as they arrived: a plain origin-form path is
    /// matched in place, without making the target a `String` (an allocation beyond 15
    /// bytes).
    public func priority(forTarget target: UnsafeRawBufferPointer) -> Priority {
        guard !routes.isEmpty else { return .normal }
        if let path = RequestTarget.plainPath(target) { return priority(forPath: path) }
        return priority(forTarget: String(decoding: target, as: UTF8.self))
    }

    /// The longest route prefix matching `path` (already the routing path).
    private func priority<Path: Collection<UInt8>>(forPath path: Path) -> Priority {
        var best: RoutePriority? = nil
        for route in routes where RequestTarget.matches(prefix: route.prefix, path: path) {
            if best == nil || route.prefix.utf8.count > best!.prefix.utf8.count { best = route }
        }
        return best?.priority ?? .normal
    }

    public var controllerSettings: AdmissionController.Settings {
        .init(
            targetUtilization: targetUtilization, queueTimeout: queueTimeout, discipline: queueDiscipline, shedAt: shedAt,
            queueDelayTarget: queueDelayTarget, queueDelayInterval: queueDelayInterval)
    }
}

/// `admission.routes[i]`: requests whose path starts with `prefix` get `priority`.
public struct RoutePriority: Sendable, Equatable {
    public var prefix: String
    public var priority: Priority
    public init(prefix: String, priority: Priority) {
        self.prefix = prefix
        self.priority = priority
    }
}

/// Token buckets (`rate_limit`), see ``TokenBucket`` and ``KeyedLimiter``.
public struct RateLimitConfig: Sendable, Equatable {
    public var global = GlobalLimit()
    public var perClient = PerClientLimit()
    public init() {}

    public struct GlobalLimit: Sendable, Equatable {
        public var enabled = true
        /// Count what would be shed, shed nothing. Default false.
        public var dryRun = false
        /// Tokens per second. Default 50000.
        public var rate = 50_000.0
        /// Bucket capacity. Default 10000.
        public var burst = 10_000
        /// Cluster mode: tokens taken from the shared bucket per fetch, as a share of
        /// `rate`. Default 0.02 (1000 tokens at 50000/s).
        public var batch = 0.02
        /// Cluster mode, Redis unreachable: `static_share` (rate / replicas) or `closed`.
        public var onStoreFailure = StoreFailurePolicy.staticShare
        public init() {}
    }

    public struct PerClientLimit: Sendable, Equatable {
        /// Opt-in (SPEC §5): behind a load balancer, or in a one-host load test, every
        /// client shares one address. Default false.
        public var enabled = false
        /// Count what would be shed, shed nothing. Default false.
        public var dryRun = false
        /// Tokens per second per client. Default 1000.
        public var rate = 1_000.0
        /// Bucket capacity per client. Default 2000.
        public var burst = 2_000
        /// `ip`, or `header:<Name>` to key by a request header such as `X-API-Key`.
        public var key = "ip"
        /// Hard bound on tracked clients (least recently used evicted). Default 100000.
        public var maxClients = 100_000
        public init() {}
    }
}

/// Timeouts (`timeouts`).
public struct TimeoutsConfig: Sendable, Equatable {
    /// TCP connect to an upstream. Default 5s (Envoy's `connect_timeout`); exceeded on
    /// every upstream → 504. It must outlast lost SYNs: Linux resends a SYN after 1 s and
    /// again 2 s later, and an upstream whose accept queue is full drops SYNs — with 1 s
    /// (the default until 2026-12-01) one dropped SYN failed the connect just as its
    /// resend would have succeeded, and a burst of new connections ejected every
    /// upstream (docs/RELIABILITY.md, "Connect timeout and lost SYNs").
    public var connect: Duration = .seconds(5)
    /// From the request being sent to the upstream's response head. Default 30s → 504.
    public var upstreamHeader: Duration = .seconds(30)
    /// Reading a client's request head (slowloris guard). Default 10s → 408.
    public var clientHeader: Duration = .seconds(10)
    /// Idle keep-alive on both sides (client connections, pooled upstream connections). Default 60s.
    public var idle: Duration = .seconds(60)
    /// A plain-TCP client connection idle this long between requests is parked: its
    /// NIO channel and handler are freed and its socket waits in the gateway's parking
    /// epoll until the client sends again (or `idle` runs out), costing ~0.2 KiB instead
    /// of ~2.8 (docs/ARCHITECTURE.md, "Parked connections"). 0s: never. Default 5s.
    public var parkAfter: Duration = .seconds(5)
    /// Between two reads of a request body the gateway is waiting for (nginx's
    /// `client_body_timeout`). Default 30s → 408 (or a close once the response started).
    public var clientBody: Duration = .seconds(30)
    /// Between two writes to a client that does not take its response (nginx's
    /// `send_timeout`). Default 30s → close.
    public var clientSend: Duration = .seconds(30)
    /// Between two reads of a response body (nginx's `proxy_read_timeout`). Default 30s → close.
    public var upstreamRead: Duration = .seconds(30)
    /// Between two writes of a request body to an upstream that does not take it
    /// (nginx's `proxy_send_timeout`). Default 30s → 504 (or a close).
    public var upstreamSend: Duration = .seconds(30)
    /// Whole request, head received → response end; 0s turns it off. Default 0s (off).
    public var request: Duration = .zero
    /// After an error answer with request bytes unread, how long the gateway keeps
    /// reading and discarding them (half-closed) so the answer is not lost to a TCP
    /// reset (nginx's lingering close). Default 5s.
    public var lingeringClose: Duration = .seconds(5)
    /// An upgraded connection (WebSocket) with no byte either way for this long is
    /// closed. Default 5m (Envoy's stream idle timeout).
    public var tunnelIdle: Duration = .seconds(300)
    /// A client connection this old answers its next request with `Connection: close`
    /// and closes after it (nginx's `keepalive_time`, same default; ``ConnectionReuse``):
    /// long-lived clients move to replicas added since they connected. 0s: no bound.
    /// Default 1h.
    public var maxConnectionAge: Duration = .seconds(3600)
    public init() {}

    /// The per-exchange timeouts as the pure deadline logic takes them.
    public var exchangeLimits: ExchangeDeadlines.Limits {
        .init(
            clientBody: clientBody, clientSend: clientSend, upstreamHeader: upstreamHeader, upstreamRead: upstreamRead,
            upstreamSend: upstreamSend, request: request)
    }
}

/// Request limits (`limits`).
public struct LimitsConfig: Sendable, Equatable {
    /// Request line excluded: total bytes of header names and values. Default 16384 → 431.
    public var maxHeaderBytes = 16_384
    /// Header fields in one request head; more → 431 `too_many_headers`. Default 100,
    /// Envoy's `max_headers_count` (HAProxy: `tune.http.maxhdr` 101; nginx bounds only
    /// the bytes). Upstreams often refuse a long list themselves, or spend on it.
    public var maxHeaderCount = 100
    /// Request body bytes. Default 10 MiB → 413.
    public var maxBodyBytes = 10_485_760
    /// Request bodies up to this size are read whole before the request is admitted
    /// (nginx's `proxy_request_buffering`, bounded): a slow uploader holds no admission
    /// slot. Larger bodies stream under `timeouts.client_body`. 0 turns buffering off.
    /// Default 65536.
    public var requestBufferBytes = 65_536
    /// Request bodies larger than `request_buffer_bytes` are spooled to a file and the
    /// request admitted only when the body is whole (nginx's `proxy_request_buffering
    /// on`), so a slow or stalled uploader holds no admission slot
    /// (``RequestBodyPlan``). This is the disk all spooled bodies may take at once; a
    /// body the budget cannot take streams after admission instead. 0 turns spooling
    /// off (larger bodies stream, as HAProxy and Envoy do). Default 1 GiB.
    public var requestSpoolBytes = 1_073_741_824
    /// Memory all client connections that do not keep up may hold at once: input read
    /// and queued (pipelined requests behind an answer, a body its upstream does not
    /// take), input of a request not complete (a head in parts, a body read before
    /// admission) and answers written that the client has not taken. Past it the
    /// connections stalled longest are closed (``StalledClientBudget``); each event
    /// loop holds its share. 0: no bound (each connection is still bounded on its own).
    /// Default 256 MiB.
    public var stalledClientBytes = 268_435_456
    /// Path prefixes (segment boundaries, as `admission.routes`) whose request bodies are
    /// not read ahead: admitted on the head, streamed to the upstream as they arrive —
    /// nginx's `proxy_request_buffering off` for a location. For endpoints that consume
    /// a body as it comes (a long chunked upload processed incrementally); such an upload
    /// holds its slot while it arrives. Default none.
    public var streamBodyPrefixes: [String] = []
    /// Where spooled bodies go (unnamed files, gone when closed). Empty: `$TMPDIR`,
    /// else `/tmp`. Checked to be a writable directory when spooling is on. Default empty.
    public var requestSpoolDir = ""
    /// The temporary directory of the environment the configuration was loaded in:
    /// `$TMPDIR` as the loader was given it, else `/tmp` (not a key: the loader sets it,
    /// so the configuration stays a value that reads no process state).
    public var temporaryDirectory = "/tmp"
    /// The directory spooled bodies go to: `request_spool_dir`, else ``temporaryDirectory``.
    public var spoolDirectory: String { requestSpoolDir.isEmpty ? temporaryDirectory : requestSpoolDir }
    /// Pipelined requests read ahead of the one being answered; beyond it the gateway
    /// stops reading the connection until answers go out. Default 16.
    public var maxPipelined = 16
    /// Client connections open at once; beyond it new ones are closed at accept.
    /// 0 means automatic: (descriptor limit − 64) / 2 — each proxied connection needs an
    /// upstream descriptor too — or / 3 with the embedded demo upstream
    /// (``ConnectionLimits/automaticTotal(descriptorLimit:descriptorsPerConnection:)``).
    /// Default 0 (automatic).
    public var maxConnections = 0
    /// Client connections open at once from one address (the peer address, or the
    /// client address a trusted proxy reported); beyond it new ones get 503 and a
    /// close. 0 turns it off. Default 0 (off: one-host load tests and clients behind
    /// NAT share an address).
    public var maxConnectionsPerClient = 0
    /// How much of an IPv6 address names one client for `max_connections_per_client`
    /// and the per-client rate limit (``AddressRange/clientKey(_:ipv6Prefix:)``): the
    /// /64 a host is usually given. 128 counts every address apart. Only a restart
    /// changes it (connections are counted under the key they opened with). Default 64.
    public var clientIPv6Prefix = 64
    /// Request header names containing `_` are forwarded when true; dropped when false
    /// (nginx's `underscores_in_headers off`): CGI-style apps read `X_Forwarded_For`
    /// as `X-Forwarded-For`. Default false.
    public var underscoresInHeaders = false
    /// Upgraded connections (WebSocket) open at once. They hold no admission slot once
    /// switched, so they are counted apart; an `Upgrade` beyond this is served as an
    /// ordinary request (the upgrade ignored). 0 turns upgrades off. Default 1024.
    public var maxTunnels = 1024
    /// The `Upgrade` protocols that may become tunnels (``UpgradeProtocols``); any
    /// other upgrade request is served as an ordinary request, its `Upgrade` removed.
    /// Default `websocket` alone.
    public var upgradeProtocols = UpgradeProtocols.websocketOnly
    /// `TRACE` is forwarded when true; answered 405 `trace_not_allowed` when false, as
    /// nginx answers it (Apache's `TraceEnable off`): an upstream that serves it echoes
    /// the request back with every header the gateway added — the client address, the
    /// request ID, whatever the upstream's own front adds. Default false.
    public var allowTrace = false
    /// Requests one client connection carries; the last is answered with `Connection:
    /// close` and the connection closes after it (nginx's `keepalive_requests`, same
    /// default; Envoy's `max_requests_per_connection`; ``ConnectionReuse``). 0: no
    /// bound. Default 1000.
    public var maxRequestsPerConnection = 1000
    public init() {}
}

/// TLS on the data listener (`tls`): swift-nio-ssl (BoringSSL), ALPN `http/1.1`.
/// The files are read again on every reload (SIGHUP), so a renewed certificate takes
/// effect for new connections without a restart.
public struct TLSConfig: Sendable, Equatable {
    public enum MinimumVersion: String, Sendable, CaseIterable {
        case v1_2 = "1.2"
        case v1_3 = "1.3"
    }

    /// PEM certificate chain, leaf first. Empty: TLS off. Default empty.
    public var certificate = ""
    /// PEM private key of the leaf certificate. Default empty.
    public var key = ""
    /// Oldest TLS version accepted. Default 1.2.
    public var minVersion = MinimumVersion.v1_2
    public init() {}

    public var enabled: Bool { !certificate.isEmpty }
}

/// Checking `https://` upstreams (`upstream_tls`).
public struct UpstreamTLSConfig: Sendable, Equatable {
    /// Verify the upstream's certificate chain and name. Default true.
    public var verify = true
    /// PEM file of CA certificates to trust instead of the system's. Default empty (system roots).
    public var caFile = ""
    public init() {}
}

/// Upstream keep-alive pools (`pool`), one per event loop per upstream.
public struct PoolConfig: Sendable, Equatable {
    /// Idle keep-alive connections kept per upstream per event loop, as nginx's
    /// `keepalive N`. Default 128.
    public var maxIdlePerUpstream = 128
    /// Connections to one upstream, busy and idle together, shared evenly by the event
    /// loops (each loop's pool holds its share, rounded up); requests beyond wait for a
    /// connection (HAProxy's server `maxconn`, Envoy's `max_connections`). Default 0 (no cap).
    public var maxConnections = 0
    /// Connects in progress at once per upstream on each event loop; a request needing
    /// a new connection beyond it waits for the first one that connects or is released
    /// (up to `timeouts.connect`). Default 64; 0 = no limit (nginx, HAProxy).
    public var maxConnecting = 64
    /// How long a pooled upstream connection may sit unused. Default 4s: below the
    /// common app-server keep-alive timeouts (Node.js 5 s, gunicorn 2-5 s are the
    /// exceptions to watch), so the gateway closes first and never reuses a
    /// connection the upstream is closing.
    public var idleTimeout: Duration = .seconds(4)
    public init() {}
}

/// The built-in demo upstreams (`demo`).
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
