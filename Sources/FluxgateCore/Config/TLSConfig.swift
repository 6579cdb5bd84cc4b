/// TLS on the data listener (`tls`): swift-nio-ssl (BoringSSL), ALPN `http/1.1`.
/// The files are read again by a reload when they (or this section) changed, and
/// `reload.watch` reloads when they change
/// (``GatewayConfig/filesReadOnReload``), so a renewed certificate takes effect for new
/// connections without a restart.
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
    /// Whether clients are asked for a certificate (mutual TLS; nginx's
    /// `ssl_verify_client`, with its words). Default off.
    public var verifyClient = ClientVerification.off
    /// PEM file of the CA certificates a client's certificate must chain to (nginx's
    /// `ssl_client_certificate`). Set with `verify_client` on or optional, and only then.
    public var clientCAFile = ""
    public init() {}

    public var enabled: Bool { !certificate.isEmpty }

    /// `tls.verify_client`. A certificate a client presents must chain to
    /// `client_ca_file` in both modes that ask for one — one that does not fails the
    /// handshake; `on` also answers every request of a client that presented none
    /// 400 `client_certificate_required` (as nginx answers 400 "No required SSL
    /// certificate was sent"), `optional` serves it.
    public enum ClientVerification: String, Sendable, CaseIterable {
        case off, optional, on

        /// The value as written: `on`, `optional`, `off`, or YAML's booleans for on and off.
        public static func parse(_ text: String) -> ClientVerification? {
            switch text {
            case "true": .on
            case "false": .off
            default: ClientVerification(rawValue: text)
            }
        }
    }
}

/// Checking `https://` upstreams (`upstream_tls`).
public struct UpstreamTLSConfig: Sendable, Equatable {
    /// Verify the upstream's certificate chain and name. Default true.
    public var verify = true
    /// PEM file of CA certificates to trust instead of the system's. Default empty (system roots).
    public var caFile = ""
    /// PEM certificate chain (leaf first) the gateway presents to an `https://` upstream
    /// that asks for a client certificate (mutual TLS; nginx's `proxy_ssl_certificate` and
    /// HAProxy's `crt` on a server line by their documentation). Default empty: none presented.
    public var certificate = ""
    /// The PEM private key of `certificate`; the two are set together or not at all.
    public var key = ""
    public init() {}

    /// A client certificate is presented (`certificate` and `key` set).
    public var presentsCertificate: Bool { !certificate.isEmpty && !key.isEmpty }
}

extension GatewayConfig {
    /// The files a reload reads besides the configuration file: the listener's
    /// certificate and key (`tls`), the CA file for `https://` upstreams
    /// (`upstream_tls.ca_file`) and the client certificate and key presented to them.
    /// `reload.watch` looks at them as at the configuration
    /// file, so a certificate renewed in place (certbot, cert-manager's Secret) is served
    /// without a reload by hand — as Envoy does for certificates given through file-based
    /// SDS (docs/CONFIGURATION.md, `tls.certificate`). Until 2026-12-07 only the
    /// configuration file was watched.
    public var filesReadOnReload: [String] { tls.filesRead + upstreamTLS.filesRead }
}

extension TLSConfig {
    /// The listener's certificate and key, and the client CA file when set, when `tls` is on.
    public var filesRead: [String] { enabled ? [certificate, key] + (clientCAFile.isEmpty ? [] : [clientCAFile]) : [] }
}

extension UpstreamTLSConfig {
    /// `ca_file` when set, then the client certificate and key when set.
    public var filesRead: [String] { (caFile.isEmpty ? [] : [caFile]) + (presentsCertificate ? [certificate, key] : []) }
}
