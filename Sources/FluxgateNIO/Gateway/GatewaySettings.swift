import FluxgateCore
import NIOCore
import NIOSSL

/// One configuration, turned into the typed values the data path reads: built once
/// per load or reload, immutable, never looked up per request.
///
/// Connections hold the settings they last saw and refresh them between requests when
/// ``GatewayRuntime/settingsVersion`` moved (one relaxed atomic load per request), so
/// a reload reaches keep-alive connections at their next request without closing them.
final class GatewaySettings: Sendable {
    /// 1 for the configuration the process started with, +1 per successful reload.
    let version: Int
    let config: GatewayConfig
    let admission: AdmissionConfig
    /// By stable slot (``UpstreamSlots``); retired slots stay, marked.
    let upstreams: [UpstreamSlot]
    let targets: [SocketAddress]
    /// `host:port` per slot, for requests that arrive without `Host` (HTTP/1.0).
    let authorities: [String]
    /// `rate_limit.per_client.key: header:<Name>` → the header keying clients (else the address).
    /// The same name lowercased, as bytes: matched against each request's field names
    /// without building a `String` per field.
    let clientKeyHeader: [UInt8]?
    let maxBodyBytes: Int
    /// Per-client buckets are on (the key is built only then).
    let perClientLimited: Bool
    let exchangeLimits: ExchangeDeadlines.Limits
    let requestBufferBytes: Int
    /// `limits.request_spool_bytes` (0 when buffering is off altogether) and where spooled bodies go.
    let spoolBytes: Int
    let spoolDirectory: String
    /// `limits.stream_body_prefixes`: paths whose bodies stream instead of being read ahead.
    let streamBodyPrefixes: [String]
    let maxPipelined: Int
    let underscoresInHeaders: Bool
    /// `abort_on_client_close`: a FIN before the answer started ends the exchange.
    let abortOnClientClose: Bool
    let maxHeaderBytes: Int
    let maxHeaderCount: Int
    let trustedProxies: [AddressRange]
    let maxTunnels: Int
    let tunnelIdle: TimeAmount
    /// The data listener's TLS context (`tls`), nil when TLS is off.
    let serverTLS: NIOSSLContext?
    /// Per slot: how to speak TLS to an `https://` upstream, nil for `http://`.
    let upstreamTLS: [UpstreamTLSTarget?]

    /// The route class of a request target (``AdmissionConfig/priority(forTarget:)``),
    /// asked of the settings themselves: a connection keeps no copy of the admission
    /// settings (the copy cost 88 bytes per idle connection, heaptrack).
    func priority(forTarget target: String) -> Priority {
        admission.priority(forTarget: target)
    }

    init(version: Int, config: GatewayConfig, upstreams: [UpstreamSlot], previous: GatewaySettings? = nil) throws {
        self.version = version
        self.config = config
        self.admission = config.admission
        self.upstreams = upstreams
        // Addresses of kept slots are not resolved again: a name that stops resolving
        // must not fail a reload that did not touch that upstream.
        self.targets = try upstreams.enumerated().map { index, slot in
            if let previous, index < previous.upstreams.count, previous.upstreams[index].url == slot.url,
                previous.config.dns.family == config.dns.family
            {
                return previous.targets[index]
            }
            do {
                return try AddressLookup.address(slot.url.endpoint.host, port: slot.url.endpoint.port, family: config.dns.family)
            } catch {
                throw ConfigError(
                    path: "upstream \(slot.url)", message: StartupProblems.unresolvable(slot.url.endpoint.host, error))
            }
        }
        self.authorities = upstreams.map { $0.url.endpoint.description }
        let key = config.rateLimit.perClient.key
        self.clientKeyHeader = key.hasPrefix("header:") ? Array(key.dropFirst("header:".count).lowercased().utf8) : nil
        self.maxBodyBytes = config.limits.maxBodyBytes
        self.perClientLimited = config.rateLimit.perClient.enabled
        self.exchangeLimits = config.timeouts.exchangeLimits
        self.requestBufferBytes = min(config.limits.requestBufferBytes, config.limits.maxBodyBytes)
        self.spoolBytes = self.requestBufferBytes > 0 ? config.limits.requestSpoolBytes : 0
        self.spoolDirectory = config.limits.spoolDirectory
        self.streamBodyPrefixes = config.limits.streamBodyPrefixes
        self.maxPipelined = config.limits.maxPipelined
        self.underscoresInHeaders = config.limits.underscoresInHeaders
        self.abortOnClientClose = config.abortOnClientClose
        self.maxHeaderBytes = config.limits.maxHeaderBytes
        self.maxHeaderCount = config.limits.maxHeaderCount
        self.trustedProxies = config.trustedProxies
        self.maxTunnels = config.limits.maxTunnels
        self.tunnelIdle = .nanoseconds(config.timeouts.tunnelIdle.nanosecondsClamped)
        self.serverTLS = try TLSContexts.server(config.tls)
        let client = upstreams.contains { $0.url.tls } ? try TLSContexts.upstream(config.upstreamTLS) : nil
        self.upstreamTLS = upstreams.map { slot in
            guard slot.url.tls, let client else { return nil }
            return UpstreamTLSTarget(context: client, host: slot.url.endpoint.host)
        }
    }

    /// The same settings with some upstreams' addresses changed (`dns.refresh`), as the
    /// next version: nothing else is read again — not the TLS files, not the other names.
    func withAddresses(_ changed: [Int: SocketAddress]) -> GatewaySettings {
        GatewaySettings(copying: self, version: version + 1, targets: targets.indices.map { changed[$0] ?? targets[$0] })
    }

    private init(copying other: GatewaySettings, version: Int, targets: [SocketAddress]) {
        self.version = version
        self.targets = targets
        self.config = other.config
        self.admission = other.admission
        self.upstreams = other.upstreams
        self.authorities = other.authorities
        self.clientKeyHeader = other.clientKeyHeader
        self.maxBodyBytes = other.maxBodyBytes
        self.perClientLimited = other.perClientLimited
        self.exchangeLimits = other.exchangeLimits
        self.requestBufferBytes = other.requestBufferBytes
        self.spoolBytes = other.spoolBytes
        self.spoolDirectory = other.spoolDirectory
        self.streamBodyPrefixes = other.streamBodyPrefixes
        self.maxPipelined = other.maxPipelined
        self.underscoresInHeaders = other.underscoresInHeaders
        self.abortOnClientClose = other.abortOnClientClose
        self.maxHeaderBytes = other.maxHeaderBytes
        self.maxHeaderCount = other.maxHeaderCount
        self.trustedProxies = other.trustedProxies
        self.maxTunnels = other.maxTunnels
        self.tunnelIdle = other.tunnelIdle
        self.serverTLS = other.serverTLS
        self.upstreamTLS = other.upstreamTLS
    }

    /// Capacity `C` with every live upstream ready.
    var fullCapacity: Int { upstreams.filter { !$0.retired }.reduce(0) { $0 + $1.maxConcurrency } }
}
