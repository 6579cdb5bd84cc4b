import FluxgateCore
import NIOSSL

/// The TLS contexts one configuration needs, built from its files (swift-nio-ssl,
/// BoringSSL): one for the data listener, one for `https://` upstreams. Built with the
/// settings, so a reload reads the files again and a renewed certificate reaches new
/// connections; a file that does not load refuses the reload and the old context stays.
enum TLSContexts {
    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    /// The listener's TLS: its context and when its certificate expires.
    struct Server: Sendable {
        let context: NIOSSLContext
        /// The leaf certificate's `notAfter`, seconds since 1970 (`fluxgate_tls_certificate_expiry_timestamp_seconds`).
        let notValidAfter: Int64
    }

    /// The listener's context, or nil when `tls` is off. TLS 1.2 at least, ALPN `http/1.1`.
    /// Each file is loaded on its own so the error names the one at fault, and a key that
    /// is not the certificate's is called a mismatch (BoringSSL reports it as a key that
    /// failed to load; nginx says "key values mismatch").
    static func server(_ config: TLSConfig) throws(SetupError) -> Server? {
        guard config.enabled else { return nil }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(config.certificate)
        } catch {
            throw SetupError(description: "tls.certificate: cannot load \(config.certificate) as PEM certificates (\(error))")
        }
        guard let leaf = chain.first else { throw SetupError(description: "tls.certificate: no certificate in \(config.certificate)") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: config.key, format: .pem)
        } catch {
            throw SetupError(description: "tls.key: cannot load \(config.key) as a PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = config.minVersion == .v1_3 ? .tlsv13 : .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        do {
            return Server(context: try NIOSSLContext(configuration: configuration), notValidAfter: Int64(leaf.notValidAfter))
        } catch NIOSSLError.failedToLoadPrivateKey {
            throw SetupError(description: "tls.key: \(config.key) is not the private key of the certificate in \(config.certificate) (they do not match)")
        } catch {
            throw SetupError(description: "tls: cannot load \(config.certificate) / \(config.key): \(error)")
        }
    }

    /// A warning when the listener's certificate has expired or expires within `days`
    /// (check-config and the start print it; the metric and its alert watch it while
    /// running): clients refuse an expired certificate, the gateway serves it anyway, as
    /// nginx does.
    static func expiryWarning(_ server: Server, certificate: String, now: Int64, days: Int64 = 14) -> String? {
        let left = server.notValidAfter - now
        if left <= 0 { return "tls.certificate: \(certificate) expired \((-left) / 86_400) day(s) ago; clients will refuse it" }
        if left < days * 86_400 { return "tls.certificate: \(certificate) expires in \(left / 86_400) day(s) (\(left / 3600) hours)" }
        return nil
    }

    /// The context for `https://` upstreams: the system's roots or `upstream_tls.ca_file`,
    /// chain and name verified unless `upstream_tls.verify` is false.
    static func upstream(_ config: UpstreamTLSConfig) throws(SetupError) -> NIOSSLContext {
        try client(caFile: config.caFile, verify: config.verify, alpn: ["http/1.1"], key: "upstream_tls")
    }

    /// A client context: TLS 1.2 at least, the system's roots or `caFile`, verified unless `verify` is false.
    static func client(caFile: String, verify: Bool, alpn: [String], key: String) throws(SetupError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = alpn
        configuration.certificateVerification = verify ? .fullVerification : .none
        if !caFile.isEmpty { configuration.trustRoots = .file(caFile) }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SetupError(description: "\(key): cannot load \(caFile): \(error)")
        }
    }
}

extension TLSContexts {
    /// The name sent as SNI and verified for `host`: nil for an address literal
    /// (then checked against the certificate's IP SANs).
    static func serverName(for host: String) -> String? {
        AddressRange.address(host) == nil ? host : nil
    }

    /// The context for `rediss://` (cluster mode): the system's roots or
    /// `cluster.tls_ca_file`, chain and name verified unless `cluster.tls_verify` is false.
    static func redis(_ config: ClusterConfig) throws(SetupError) -> NIOSSLContext? {
        guard config.redis.tls else { return nil }
        return try client(caFile: config.tlsCAFile, verify: config.tlsVerify, alpn: [], key: "cluster.tls_ca_file")
    }
}

/// How to reach one `https://` upstream: the shared client context and the name
/// sent as SNI and verified (nil for an address literal, checked against IP SANs).
struct UpstreamTLSTarget: Sendable {
    let context: NIOSSLContext
    let serverName: String?

    init(context: NIOSSLContext, host: String) {
        self.context = context
        self.serverName = TLSContexts.serverName(for: host)
    }

    func makeHandler() throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: serverName)
    }
}
