import Foundation

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
    /// Requests one upstream connection carries before it is closed instead of pooled
    /// again (nginx's upstream `keepalive_requests`, same default). Default 1000; 0 = no bound.
    public var maxRequestsPerConnection = 1000
    /// How long an upstream connection is reused after it opened (nginx's upstream
    /// `keepalive_time`, same default). Default 1h; 0s = no bound.
    public var maxConnectionAge: Duration = .seconds(3600)
    public init() {}
}
