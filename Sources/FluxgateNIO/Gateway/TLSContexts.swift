import FluxgateCore
import NIOSSL

/// The TLS contexts one configuration needs, built from its files (swift-nio-ssl,
/// BoringSSL): one for the data listener, one for `https://` upstreams. Built with the
/// settings when their section or a file's stamp changed (else the settings before keep
/// theirs: ``GatewaySettings``), so a renewed certificate reaches new connections; a file
/// that does not load refuses the reload and the old context stays.
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
    static func server(_ config: TLSConfig) throws(SetupError) -> Server? {
        guard config.enabled else { return nil }
        let identity = try Identity.load(certificate: config.certificate, key: config.key, names: ("tls.certificate", "tls.key"))
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: identity.chain.map { .certificate($0) }, privateKey: .privateKey(identity.key))
        configuration.minimumTLSVersion = config.minVersion == .v1_3 ? .tlsv13 : .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        if config.verifyClient != .off {
            // Optional at the handshake in both modes: a certificate presented must
            // verify, and `on` refuses a client that sent none with an HTTP answer that
            // says so (ProxyHandler), where a handshake failure would tell it nothing.
            configuration.certificateVerification = .optionalVerification
            configuration.trustRoots = .certificates(try Identity.certificates(config.clientCAFile, name: "tls.client_ca_file"))
            configuration.sendCANameList = true
        }
        let context = try Self.context(configuration, identity: identity, section: "tls", files: config.filesRead)
        return Server(context: context, notValidAfter: Int64(identity.chain[0].notValidAfter))
    }

    /// A certificate chain and its private key, read from PEM files.
    struct Identity {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        let certificatePath: String
        let keyPath: String
        /// The configuration keys that name the two files (`tls.certificate`, `tls.key`).
        let names: (certificate: String, key: String)

        /// Each file is loaded on its own so the error names the one at fault by its key.
        static func load(certificate: String, key: String, names: (certificate: String, key: String)) throws(SetupError) -> Identity {
            let chain = try certificates(certificate, name: names.certificate)
            do {
                return Identity(
                    chain: chain, key: try NIOSSLPrivateKey(file: key, format: .pem), certificatePath: certificate, keyPath: key, names: names)
            } catch {
                throw SetupError(description: "\(names.key): cannot load \(key) as a PEM private key (\(error))")
            }
        }

        /// The PEM certificates in `path` (at least one), the key `name` named in the error.
        static func certificates(_ path: String, name: String) throws(SetupError) -> [NIOSSLCertificate] {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(path)
            } catch {
                throw SetupError(description: "\(name): cannot load \(path) as PEM certificates (\(error))")
            }
            guard !certificates.isEmpty else { throw SetupError(description: "\(name): no certificate in \(path)") }
            return certificates
        }

        var mismatch: SetupError {
            SetupError(description: "\(names.key): \(keyPath) is not the private key of the certificate in \(certificatePath) (they do not match)")
        }
    }

    /// The context of `configuration`, which holds `identity` when given; a key that is
    /// not its certificate's is called a mismatch (BoringSSL reports it as a key that
    /// failed to load; nginx says "key values mismatch"); any other failure names
    /// `section` and the `files` that went in.
    static func context(
        _ configuration: TLSConfiguration, identity: Identity?, section: String, files: [String]
    ) throws(SetupError) -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey where identity != nil {
            throw identity!.mismatch
        } catch {
            throw SetupError(description: "\(section): cannot load \(files.filter { !$0.isEmpty }.joined(separator: " / ")): \(error)")
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
    /// chain and name verified unless `upstream_tls.verify` is false; the client
    /// certificate `upstream_tls.certificate` presented to an upstream that asks for one.
    static func upstream(_ config: UpstreamTLSConfig) throws(SetupError) -> NIOSSLContext {
        let identity = config.presentsCertificate
            ? try Identity.load(certificate: config.certificate, key: config.key, names: ("upstream_tls.certificate", "upstream_tls.key")) : nil
        return try client(caFile: config.caFile, verify: config.verify, alpn: ["http/1.1"], key: "upstream_tls", identity: identity)
    }

    /// A client context: TLS 1.2 at least, the system's roots or `caFile`, verified unless
    /// `verify` is false, presenting `identity` when given.
    static func client(caFile: String, verify: Bool, alpn: [String], key: String, identity: Identity? = nil) throws(SetupError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = alpn
        configuration.certificateVerification = verify ? .fullVerification : .none
        if !caFile.isEmpty { configuration.trustRoots = .file(caFile) }
        if let identity {
            configuration.certificateChain = identity.chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(identity.key)
        }
        return try context(
            configuration, identity: identity, section: key, files: [caFile, identity?.certificatePath ?? "", identity?.keyPath ?? ""])
    }
}

extension TLSContexts {
    /// The name sent as SNI and verified for `host`: nil for an address literal
    /// (then checked against the certificate's IP SANs).
    static func serverName(for host: String) -> String? {
        AddressRange.address(host) == nil ? host : nil
    }

    /// The context for `rediss://` (cluster mode): the system's roots or
    /// `cluster.tls_ca_file`, chain and name verified unless `cluster.tls_verify` is false;
    /// the client certificate `cluster.tls_certificate` for a server that asks for one.
    static func redis(_ config: ClusterConfig) throws(SetupError) -> NIOSSLContext? {
        guard config.redis.tls else { return nil }
        let identity = config.presentsTLSCertificate
            ? try Identity.load(certificate: config.tlsCertificate, key: config.tlsKey, names: ("cluster.tls_certificate", "cluster.tls_key"))
            : nil
        return try client(caFile: config.tlsCAFile, verify: config.tlsVerify, alpn: [], key: "cluster.tls_ca_file", identity: identity)
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
