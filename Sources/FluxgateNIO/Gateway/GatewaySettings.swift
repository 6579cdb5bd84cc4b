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
    /// Some slot's requests carry a `Host` of its own (``UpstreamSlot/hostHeader``):
    /// without one, the client's head goes upstream as it was written.
    let rewritesHost: Bool
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
    /// `limits.max_requests_per_connection` and `timeouts.max_connection_age`.
    let connectionReuse: ConnectionReuse.Limits
    /// The data listener's TLS context (`tls`), nil when TLS is off.
    let serverTLS: NIOSSLContext?
    /// Its certificate's `notAfter` (seconds since 1970), nil when TLS is off.
    let serverCertificateExpiry: Int64?
    /// Per slot: how to speak TLS to an `https://` upstream, nil for `http://`.
    let upstreamTLS: [UpstreamTLSTarget?]
    /// The stamps (``ConfigSource/filesFingerprint(_:)``) of the files each context was
    /// built from, taken before they were read: a reload that changes neither the section
    /// nor a file keeps the context (``init(version:config:upstreams:targets:overListed:previous:)``).
    let serverTLSStamp: String
    let upstreamTLSStamp: String
    /// Upstreams whose host name listed more addresses than their `addresses` when
    /// these settings were resolved (name → addresses listed), for start and reload to
    /// warn about; empty in a `dns.refresh`'s settings (the refresh warns by itself).
    let overListed: [String: Int]

    /// The route class of a request target (``AdmissionConfig/priority(forTarget:)``),
    /// asked of the settings themselves: a connection keeps no copy of the admission
    /// settings (the copy cost 88 bytes per idle connection, heaptrack).
    func priority(forTarget target: Exchange.Target) -> Priority {
        target.withUTF8 { admission.priority(forTarget: $0) }
    }

    /// The settings for `config` with `upstreams`' slots at `targets` (one address per
    /// slot, retired ones included): see ``resolve(_:version:previous:lookup:)`` for
    /// where they come from. The TLS contexts of `previous` are kept when their section
    /// and files are unchanged: until 2026-12-07 every reload built new ones, and since a
    /// pool closes the connections made with another context, any reload — a rate limit
    /// changed — closed every pooled `https://` connection (a handshake each to open
    /// again), and the listener's session tickets stopped resuming.
    init(
        version: Int, config: GatewayConfig, upstreams: [UpstreamSlot], targets: [SocketAddress], overListed: [String: Int] = [:],
        previous: GatewaySettings? = nil
    ) throws {
        precondition(upstreams.count == targets.count, "one address per slot")
        self.version = version
        self.overListed = overListed
        self.config = config
        self.admission = config.admission
        self.upstreams = upstreams
        self.targets = targets
        self.authorities = upstreams.map { $0.url.endpoint.description }
        self.rewritesHost = upstreams.contains { $0.hostHeader != nil }
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
        self.connectionReuse = config.connectionReuse
        self.serverTLSStamp = ConfigSource.filesFingerprint(config.tls.filesRead)
        if let previous, previous.config.tls == config.tls, previous.serverTLSStamp == serverTLSStamp {
            self.serverTLS = previous.serverTLS
            self.serverCertificateExpiry = previous.serverCertificateExpiry
        } else {
            let server = try TLSContexts.server(config.tls)
            self.serverTLS = server?.context
            self.serverCertificateExpiry = server?.notValidAfter
        }
        self.upstreamTLSStamp = ConfigSource.filesFingerprint(config.upstreamTLS.filesRead)
        let client: NIOSSLContext?
        if !upstreams.contains(where: { $0.url.tls }) {
            client = nil
        } else if let previous, let kept = previous.upstreamClientContext, previous.config.upstreamTLS == config.upstreamTLS,
            previous.upstreamTLSStamp == upstreamTLSStamp
        {
            client = kept
        } else {
            client = try TLSContexts.upstream(config.upstreamTLS)
        }
        self.upstreamTLS = upstreams.map { slot in
            guard slot.url.tls, let client else { return nil }
            return UpstreamTLSTarget(context: client, host: slot.url.endpoint.host)
        }
    }

    /// The same settings with the upstreams' members changed (`dns.refresh`: a member's
    /// address moved, a member added or retired), as the next version: nothing else is
    /// read again — not the TLS files, not the other names.
    func withMembers(_ upstreams: [UpstreamSlot], targets: [SocketAddress]) -> GatewaySettings {
        GatewaySettings(copying: self, version: version + 1, upstreams: upstreams, targets: targets)
    }

    private init(copying other: GatewaySettings, version: Int, upstreams: [UpstreamSlot], targets: [SocketAddress]) {
        precondition(upstreams.count == targets.count, "one address per slot")
        self.version = version
        self.overListed = [:]
        self.targets = targets
        self.config = other.config
        self.admission = other.admission
        self.upstreams = upstreams
        self.authorities = upstreams.map { $0.url.endpoint.description }
        self.rewritesHost = upstreams.contains { $0.hostHeader != nil }
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
        self.connectionReuse = other.connectionReuse
        self.serverTLS = other.serverTLS
        self.serverCertificateExpiry = other.serverCertificateExpiry
        self.serverTLSStamp = other.serverTLSStamp
        self.upstreamTLSStamp = other.upstreamTLSStamp
        // A new member of an `https://` upstream: the client context its siblings use
        // (every member of one upstream shares its URL, so one exists).
        let client = other.upstreamClientContext
        self.upstreamTLS = upstreams.indices.map { index in
            if index < other.upstreamTLS.count, other.upstreams[index].url == upstreams[index].url { return other.upstreamTLS[index] }
            guard upstreams[index].url.tls, let client else { return nil }
            return UpstreamTLSTarget(context: client, host: upstreams[index].url.endpoint.host)
        }
    }

    /// The one client context every `https://` slot shares; nil without such a slot.
    var upstreamClientContext: NIOSSLContext? { upstreamTLS.lazy.compactMap { $0?.context }.first }

    /// Capacity `C` with every live upstream ready.
    var fullCapacity: Int { upstreams.filter { !$0.retired }.reduce(0) { $0 + $1.maxConcurrency } }
}
