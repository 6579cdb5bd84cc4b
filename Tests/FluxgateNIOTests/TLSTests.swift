import Crypto
import FluxgateCore
import FluxgateTestSupport
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import X509

@testable import FluxgateNIO

/// TLS on real sockets with certificates made here (swift-certificates): termination
/// on the data listener, `https://` upstreams with verification, certificate reload.
@Suite(.timeLimit(.minutes(1)))
struct TLSTests {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let gatewayGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// A self-signed certificate for `localhost`, written as PEM files.
    struct Credentials {
        let certificate: NIOSSLCertificate
        let certificatePath: String
        let keyPath: String

        static func make(in folder: URL, name: String, validFor: TimeInterval = 3600) throws -> Credentials {
            let key = P256.Signing.PrivateKey()
            let subject = try DistinguishedName { CommonName(name) }
            let now = Date()
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: now - 3600, notValidAfter: now + validFor, issuer: subject, subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                    SubjectAlternativeNames([.dnsName("localhost")])
                },
                issuerPrivateKey: .init(key))
            let pem = try certificate.serializeAsPEM().pemString
            let certificatePath = folder.appendingPathComponent("\(name).crt").path
            let keyPath = folder.appendingPathComponent("\(name).key").path
            try pem.write(toFile: certificatePath, atomically: true, encoding: .utf8)
            try key.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
            return Credentials(
                certificate: try NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem), certificatePath: certificatePath, keyPath: keyPath)
        }

        /// A TLS server context presenting this certificate (for an `https://` test upstream).
        func serverContext() throws -> NIOSSLContext {
            try NIOSSLContext(
                configuration: .makeServerConfiguration(
                    certificateChain: [.certificate(certificate)],
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))))
        }
    }

    func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// One request over TLS trusting `trusted`; the whole answer, or the handshake's error.
    func tlsExchange(
        _ request: String, to address: SocketAddress, trusting trusted: NIOSSLCertificate, maxVersion: TLSVersion? = nil,
        presenting identity: Credentials? = nil
    ) async throws -> RawClient.Outcome {
        let (channel, sink) = try await openTLS(to: address, trusting: trusted, maxVersion: maxVersion, presenting: identity)
        try? await channel.writeAndFlush(ByteBuffer(string: request))
        try? await channel.closeFuture.get()
        return sink.outcome
    }

    /// A gateway terminating TLS with a fresh `localhost` certificate (in `dir`) before
    /// one test upstream; everything is stopped after `body`.
    func withTLSGateway(
        _ adjust: (inout GatewayConfig) -> Void = { _ in },
        _ body: (GatewayHarness, TestUpstream, Credentials, URL, GatewayConfig) async throws -> Void
    ) async throws {
        let dir = try folder()
        let credentials = try Credentials.make(in: dir, name: "gateway")
        let upstream = try await TestUpstream.start(name: "a", group: group)
        let config = try makeConfig(upstreams: [upstream.url]) {
            $0.tls.certificate = credentials.certificatePath
            $0.tls.key = credentials.keyPath
            adjust(&$0)
        }
        try await withGateway(config, group: gatewayGroup) { try await body($0, upstream, credentials, dir, config) }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    @Test func theListenerTerminatesTLSAndTellsTheUpstream() async throws {
        try await withTLSGateway { gateway, upstream, credentials, _, _ in
            let outcome = try await tlsExchange(
                "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", to: gateway.address, trusting: credentials.certificate)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(outcome)")
            #expect(upstream.raw.lowercased().contains("x-forwarded-proto: https\r\n"))
            // TLS 1.1 is below the minimum: no handshake, no request.
            let old = try await tlsExchange(
                "GET /old HTTP/1.1\r\nHost: h\r\n\r\n", to: gateway.address, trusting: credentials.certificate, maxVersion: .tlsv11)
            #expect(old.error != nil)
            #expect(!upstream.raw.contains("/old"))
            // Plain HTTP to the TLS port is not served: a plain 400 says why (nginx's
            // "plain HTTP request was sent to HTTPS port"), then the connection closes.
            let plain = try await RawClient.exchange("GET /plain HTTP/1.1\r\nHost: h\r\n\r\n", with: gateway.address, group: group)
            #expect(plain.text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(plain)")
            #expect(plain.text.contains("plain_http_on_tls_port"))
            #expect(plain.error == nil, "closed without a reset")
            #expect(!upstream.raw.contains("/plain"))
            // Bytes that are neither a handshake nor a method's letter go to TLS, which refuses them.
            let garbage = try await RawClient.exchange("\u{1}\u{2}\u{3} not tls", with: gateway.address, group: group)
            #expect(!garbage.text.contains("HTTP/1.1"))
            // TLS still works after both.
            let again = try await tlsExchange(
                "GET /again HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", to: gateway.address, trusting: credentials.certificate)
            #expect(again.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(again)")
        }
    }

    /// A client that connects to the TLS port and never finishes its handshake is closed
    /// at `timeouts.client_header`, at once: there is no session to carry a 408, so the
    /// lingering close (an hour here) that follows a 408 would only hold the descriptor.
    /// A client past its handshake that sends half a head gets its 408 over TLS.
    @Test func aHandshakeThatNeverEndsIsClosedAtTheHeadTimeoutWithoutLingering() async throws {
        try await withTLSGateway({
            // Long enough for the last client's handshake and first write on a loaded
            // machine (200 ms failed once beside a release build: the gateway closed first).
            $0.timeouts.clientHeader = .seconds(1)
            $0.timeouts.lingeringClose = .seconds(3600)
        }) { gateway, _, credentials, _, _ in
            for opening in ["", "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}"] {  // silent; half a ClientHello
                let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
                if !opening.isEmpty { try await channel.writeAndFlush(ByteBuffer(string: opening)) }
                // Closed by the gateway; lingering, it would stay open for an hour.
                try await eventually("closed at the head timeout") { !channel.isActive }
                #expect(sink.outcome.text.isEmpty)
                try? await channel.close()
            }
            let (channel, sink) = try await openTLS(to: gateway.address, trusting: credentials.certificate)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /half HTTP/1.1\r\n"))
            try await eventually("the 408 over TLS") { sink.outcome.text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n") }
            try? await channel.close()
        }
    }

    /// TLS state lives in the pipeline (NIOSSL): an idle TLS connection is never parked
    /// (docs/ARCHITECTURE.md, "Parked connections"); it waits out its idle timeout.
    @Test func tlsConnectionsAreNeverParked() async throws {
        try await withTLSGateway({
            $0.timeouts.parkAfter = .milliseconds(1)
            $0.timeouts.idle = .milliseconds(300)
        }) { gateway, _, credentials, _, _ in
            // Kept alive: idle for 300 ms after the answer, then closed by the gateway.
            let outcome = try await tlsExchange("GET /ka HTTP/1.1\r\nHost: h\r\n\r\n", to: gateway.address, trusting: credentials.certificate)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(outcome)")
            #expect(gateway.gateway.liveObjects.totalParks == 0)
        }
    }

    /// A TLS connection cannot park, but idle for `park_after` it is listed: at
    /// `limits.max_connections` the one idle longest is closed for a new client, as a
    /// parked plain connection would be (before, idle TLS clients kept newcomers out
    /// until their idle timeout).
    @Test func atTheCapTheTLSConnectionIdleLongestMakesRoom() async throws {
        try await withTLSGateway(Self.listingAfter50ms(cap: 2)) { gateway, _, credentials, _, _ in
            let live = gateway.gateway.liveObjects
            let (oldest, oldestSink) = try await idleListedTLS(gateway, credentials, listed: 1)
            let (newer, newerSink) = try await idleListedTLS(gateway, credentials, listed: 2)
            #expect(live.totalParks == 0, "TLS connections are not parked")

            let third = try await tlsExchange(
                "GET /n/3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", to: gateway.address, trusting: credentials.certificate)
            #expect(third.text.hasPrefix("HTTP/1.1 200"), "\(third.text)")
            try await oldest.closeFuture.get()  // closed by the gateway to make room
            #expect(oldestSink.outcome.text.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 1)
            // The newer one keeps its place and is served when it asks again.
            try await newer.writeAndFlush(ByteBuffer(string: "GET /n/4 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the newer connection served again") {
                newerSink.outcome.text.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 2
            }
            try await newer.close()
            try await eventually("closing takes it off the list") { live.idleListedConnections == 0 }
        }
    }

    /// A listed connection that reads again is off the list: busy, it is never closed
    /// for a newcomer, who is refused instead.
    @Test func aBusyTLSConnectionIsNotEvicted() async throws {
        try await withTLSGateway(Self.listingAfter50ms(cap: 1)) { gateway, upstream, credentials, _, _ in
            let live = gateway.gateway.liveObjects
            let (busy, _) = try await idleListedTLS(gateway, credentials, listed: 1)
            try await busy.writeAndFlush(ByteBuffer(string: "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the upstream holds its request") { upstream.raw.contains("/hold") }
            #expect(live.idleListedConnections == 0, "reading again took it off the list")
            let refused = try await tlsExchange(
                "GET /n/2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", to: gateway.address, trusting: credentials.certificate)
            #expect(!refused.text.contains("200 OK"), "\(refused.text)")
            let metrics = try await OneShot.request("GET", "/metrics", to: gateway.gateway.adminAddress!, group: group)
            #expect(metrics.body.contains("fluxgate_connections_evicted_total 0"))
            #expect(metrics.body.contains(#"fluxgate_connections_refused_total{reason="max_connections"} 1"#))
            #expect(busy.isActive)
            try await busy.close()
        }
    }

    /// A connection cap of `cap`, idle connections listed (TLS) after 50 ms, closed after 30 s.
    static func listingAfter50ms(cap: Int) -> (inout GatewayConfig) -> Void {
        {
            $0.limits.maxConnections = cap
            $0.timeouts.parkAfter = .milliseconds(50)
            $0.timeouts.idle = .seconds(30)
        }
    }

    /// A TLS connection that made one request and sits idle until the gateway lists it
    /// for eviction (`listed` idle TLS connections in all).
    func idleListedTLS(
        _ gateway: GatewayHarness, _ credentials: Credentials, listed: Int
    ) async throws -> (any Channel, RawClient.Sink) {
        let (channel, sink) = try await openTLS(to: gateway.address, trusting: credentials.certificate)
        try await channel.writeAndFlush(ByteBuffer(string: "GET /n/\(listed) HTTP/1.1\r\nHost: h\r\n\r\n"))
        try await eventually("\(listed) listed") { gateway.gateway.liveObjects.idleListedConnections == listed }
        return (channel, sink)
    }

    /// A kept-open TLS client connection and what it receives.
    func openTLS(
        to address: SocketAddress, trusting trusted: NIOSSLCertificate, maxVersion: TLSVersion? = nil, presenting identity: Credentials? = nil
    ) async throws -> (any Channel, RawClient.Sink) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([trusted])
        configuration.applicationProtocols = ["http/1.1"]
        if let maxVersion { configuration.maximumTLSVersion = maxVersion }
        if let identity {
            configuration.certificateChain = [.certificate(identity.certificate)]
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: identity.keyPath, format: .pem))
        }
        let context = try NIOSSLContext(configuration: configuration)
        let sink = RawClient.Sink()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    try channel.pipeline.syncOperations.addHandler(RawClient.SinkHandler(sink: sink))
                }
            }
            .connect(to: address).get()
        return (channel, sink)
    }

    @Test func aReloadServesTheRenewedCertificateToNewConnections() async throws {
        try await withTLSGateway { gateway, _, first, dir, config in
            let request = "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            #expect(try await tlsExchange(request, to: gateway.address, trusting: first.certificate).text.hasPrefix("HTTP/1.1 200"))
            let expiry = #"fluxgate_tls_certificate_expiry_timestamp_seconds "#
            let before = try await OneShot.request("GET", "/metrics", to: gateway.gateway.adminAddress!, group: group).body
            #expect(before.contains(expiry + "\(Double(first.certificate.notValidAfter))"), "\(before.split(separator: "\n").filter { $0.contains("tls") })")
            // A reload that changes nothing keeps the context (and its session tickets):
            // the files are read again only when they or `tls` changed.
            let context = gateway.gateway.runtime.settings.serverTLS
            let unchanged = await gateway.gateway.reload(config)
            #expect(unchanged.succeeded && unchanged.changes == [], "\(unchanged)")
            #expect(gateway.gateway.runtime.settings.serverTLS === context)
            // Renewed in place (same paths, as certbot or cert-manager do), then reloaded.
            let renewed = try Credentials.make(in: dir, name: "gateway", validFor: 90 * 86_400)
            let outcome = await gateway.gateway.reload(config)
            #expect(outcome.result == "success" && outcome.changes == ["tls certificate and key read again"], "\(outcome)")
            #expect(gateway.gateway.runtime.settings.serverTLS !== context)
            // The metric follows the certificate now served (FluxgateCertificateExpiresSoon reads it).
            let after = try await OneShot.request("GET", "/metrics", to: gateway.gateway.adminAddress!, group: group).body
            #expect(after.contains(expiry + "\(Double(renewed.certificate.notValidAfter))"))
            #expect(try await tlsExchange(request, to: gateway.address, trusting: renewed.certificate).text.hasPrefix("HTTP/1.1 200"))
            #expect(try await tlsExchange(request, to: gateway.address, trusting: first.certificate).error != nil)
            // A key that does not load refuses the reload; the running certificate stays.
            try "not a key".write(toFile: renewed.keyPath, atomically: true, encoding: .utf8)
            let refused = await gateway.gateway.reload(config)
            #expect(refused.result == "error")
            #expect(refused.errors.joined().contains("tls"))
            #expect(try await tlsExchange(request, to: gateway.address, trusting: renewed.certificate).text.hasPrefix("HTTP/1.1 200"))
        }
    }

    /// A certificate renewed in place (certbot, or cert-manager's Secret — a symlinked
    /// mount like a ConfigMap's) is served to new connections without a reload by hand:
    /// `reload.watch` looks at the certificate and key the configuration names, not only at
    /// the file itself (until 2026-12-07 it did not, and a renewed certificate waited for a
    /// SIGHUP while the old one ran out).
    @Test func theWatchServesARenewedCertificate() async throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try Credentials.make(in: dir, name: "gateway")
        let upstream = try await TestUpstream.start(name: "a", group: group)
        let path = dir.appendingPathComponent("gateway.conf").path
        try """
            listen: "127.0.0.1:0"
            admin_listen: "127.0.0.1:0"
            reload: { interval: 100ms }
            tls: { certificate: "\(first.certificatePath)", key: "\(first.keyPath)" }
            upstreams: [{url: "\(upstream.url)"}]

            """.write(toFile: path, atomically: true, encoding: .utf8)
        let source = ConfigSource.file(path)
        let server = try GatewayServer(config: try source.load(), group: gatewayGroup, logger: .init(label: "t"), source: source)
        let address = try await server.start()
        let request = "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        #expect(try await tlsExchange(request, to: address, trusting: first.certificate).text.hasPrefix("HTTP/1.1 200"))
        let renewed = try Credentials.make(in: dir, name: "gateway", validFor: 90 * 86_400)  // same paths
        try await eventually("the watch reloads the renewed certificate") { server.runtime.settings.version == 2 }
        #expect(try await tlsExchange(request, to: address, trusting: renewed.certificate).text.hasPrefix("HTTP/1.1 200"))
        #expect(try await tlsExchange(request, to: address, trusting: first.certificate).error != nil)
        try await server.stop()
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// The whole answer to one `GET path` through a gateway running `config`.
    func answer(_ path: String, through config: GatewayConfig) async throws -> String {
        try await withGateway(config, group: gatewayGroup) { gateway in
            try await RawClient.exchange(
                "GET \(path) HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: gateway.address, group: group
            ).text
        }
    }

    @Test func httpsUpstreamsAreVerified() async throws {
        let credentials = try Credentials.make(in: try folder(), name: "upstream")
        let serverContext = try credentials.serverContext()
        let upstream = try await TestUpstream.start(name: "a", group: group, tls: serverContext)
        let url = "https://localhost:\(upstream.port)"
        // Trusting the upstream's CA: proxied.
        let trusting = try await answer("/x", through: try makeConfig(upstreams: [url]) { $0.upstreamTLS.caFile = credentials.certificatePath })
        #expect(trusting.hasPrefix("HTTP/1.1 200 OK\r\n") && trusting.hasSuffix(#"{"instance":"a"}"#), "\(trusting)")
        // The system's roots do not know this certificate: verification fails, 502.
        let strict = try await answer("/y", through: try makeConfig(upstreams: [url]))
        #expect(strict.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(strict)")
        #expect(!upstream.raw.contains("/y"))
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// An `https://` upstream that asks for a client certificate (mutual TLS) gets
    /// `upstream_tls.certificate`: without one the handshake fails, nothing reaches it and
    /// the answer is 502; with it, 200. (Health probes take the same context.)
    @Test func anUpstreamThatAsksForAClientCertificateGetsOne() async throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Credentials.make(in: dir, name: "upstream")
        let client = try Credentials.make(in: dir, name: "gateway-client")
        var serverConfiguration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(server.certificate)],
            privateKey: .privateKey(try NIOSSLPrivateKey(file: server.keyPath, format: .pem)))
        serverConfiguration.certificateVerification = .noHostnameVerification
        serverConfiguration.trustRoots = .certificates([client.certificate])
        let upstream = try await TestUpstream.start(name: "a", group: group, tls: try NIOSSLContext(configuration: serverConfiguration))
        let url = "https://localhost:\(upstream.port)"
        let without = try await answer("/without", through: try makeConfig(upstreams: [url]) { $0.upstreamTLS.caFile = server.certificatePath })
        #expect(without.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(without)")
        #expect(!upstream.raw.contains("/without"))
        let with = try makeConfig(upstreams: [url]) {
            $0.upstreamTLS.caFile = server.certificatePath
            $0.upstreamTLS.certificate = client.certificatePath
            $0.upstreamTLS.key = client.keyPath
            $0.pool.idleTimeout = .seconds(3600)  // only the reload may close the pooled connection
        }
        #expect(with.filesReadOnReload == [server.certificatePath, client.certificatePath, client.keyPath])
        try await withGateway(with, group: gatewayGroup) { gateway in
            let outcome = try await RawClient.exchange(
                "GET /with HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: gateway.address, group: group)
            #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(outcome.text)")
            #expect(upstream.raw.contains("GET /with "))
            // A reload that changes nothing keeps the context, and with it the pooled
            // connection: the next request takes it (until 2026-12-07 every reload built a
            // new context, and so closed every pooled `https://` connection).
            let pooled = upstream.acceptedConnections
            let unchanged = await gateway.gateway.reload(with)
            #expect(unchanged.succeeded && unchanged.changes == [], "\(unchanged)")
            let kept = try await RawClient.exchange(
                "GET /kept HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: gateway.address, group: group)
            #expect(kept.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(kept.text)")
            #expect(upstream.acceptedConnections == pooled)
            // Written again in place (a renewal, here with the same bytes: what the reload
            // compares is the files' stamps), a reload reads the two files again, and says
            // so (a renewal changes no key); the connection pooled before it closes, and
            // the next request makes a new one with what the reload read.
            // (Every connection accepted so far — the refused one above, this pooled one —
            // is closed once the reload is taken.)
            for path in [client.certificatePath, client.keyPath] {
                try String(contentsOfFile: path, encoding: .utf8).write(toFile: path, atomically: true, encoding: .utf8)
            }
            let accepted = upstream.acceptedConnections
            let reload = await gateway.gateway.reload(with)
            #expect(reload.succeeded && reload.changes == ["upstream_tls certificate and key read again"], "\(reload)")
            try await upstream.waitForClosedConnections(accepted)
            let again = try await RawClient.exchange(
                "GET /again HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: gateway.address, group: group)
            #expect(again.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(again.text)")
            #expect(upstream.acceptedConnections == accepted + 1)
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// Three `https://` test upstreams for `body` — `good` (its certificate is
    /// `trusted`), `untrusted` (a certificate nobody trusts) and `hung` (connects
    /// complete, nothing is ever answered) — stopped after it, with the groups.
    func withHandshakeUpstreams(
        _ body: (_ good: TestUpstream, _ untrusted: TestUpstream, _ hung: BlackHole, _ trusted: Credentials) async throws -> Void
    ) async throws {
        let trusted = try Credentials.make(in: try folder(), name: "upstream")
        let stranger = try Credentials.make(in: try folder(), name: "stranger")
        let good = try await TestUpstream.start(name: "good", group: group, tls: try trusted.serverContext())
        let untrusted = try await TestUpstream.start(name: "untrusted", group: group, tls: try stranger.serverContext())
        try await body(good, untrusted, try BlackHole(completingConnects: true), trusted)
        try await good.stop()
        try await untrusted.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// The TLS handshake is part of connecting to an `https://` upstream: one that
    /// accepts and never answers the ClientHello is given `timeouts.connect`, and one
    /// whose certificate is not trusted fails at once — either way nothing reached it,
    /// so even a `POST` goes to the next upstream, and the failure counts against the
    /// upstream's health. Until 2026-12-05 the request waited in the TLS handler for
    /// `timeouts.upstream_header` (504) or was answered 502, without failing over.
    @Test func aTLSHandshakeThatHangsOrFailsFailsOverLikeAConnect() async throws {
        try await withHandshakeUpstreams { good, untrusted, hung, credentials in
            let config = try makeConfig(upstreams: ["https://localhost:\(hung.port)", "https://localhost:\(untrusted.port)", "https://localhost:\(good.port)"]) {
                $0.upstreamTLS.caFile = credentials.certificatePath
                $0.timeouts.connect = .milliseconds(300)
                $0.timeouts.upstreamHeader = .seconds(20)
                $0.healthCheck.enabled = false
                $0.healthCheck.passive.enabled = false
            }
            try await withGateway(config, group: gatewayGroup) { gateway in
                // Round-robin starts each request at the next upstream: three requests
                // begin once at each.
                for index in 0..<3 {
                    let started = ContinuousClock.now
                    let outcome = try await RawClient.exchange(
                        "POST /p\(index) HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", with: gateway.address, group: group)
                    #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(outcome.text)")
                    #expect(outcome.text.hasSuffix(#"{"instance":"good"}"#), "\(outcome.text)")
                    #expect(ContinuousClock.now - started < .seconds(10))
                }
                #expect(!untrusted.raw.contains("/p"))
                let metrics = try await gateway.metrics()
                #expect(metrics[#"fluxgate_upstream_failures_total{upstream="localhost:\#(hung.port)",kind="timeout"}"#, default: 0] >= 1, "\(metrics)")
                #expect(metrics[#"fluxgate_upstream_failures_total{upstream="localhost:\#(untrusted.port)",kind="connect"}"#, default: 0] >= 1)
                #expect(metrics[#"fluxgate_retries_total{cause="connect_failed"}"#, default: 0] >= 2)
            }
        }
    }

    /// A health check of an `https://` upstream names a failed handshake as one
    /// (until 2026-12-05 an untrusted certificate read "connection reset" in the
    /// `upstream down` line); a handshake that never ends is the probe's timeout.
    @Test func aHealthCheckNamesAFailedTLSHandshake() async throws {
        try await withHandshakeUpstreams { good, untrusted, hung, credentials in
            var settings = UpstreamTLSConfig()
            settings.caFile = credentials.certificatePath
            let tls = UpstreamTLSTarget(context: try TLSContexts.upstream(settings), host: "localhost")
            let loop = group.next()
            func probe(_ port: Int) async throws -> UpstreamHealth.Failure? {
                try await HealthProbe.run(
                    target: try SocketAddress(ipAddress: "127.0.0.1", port: port), tls: tls,
                    request: HealthProbe.request(path: "/health", authority: "localhost"), timeout: .milliseconds(500), on: loop
                ).get()
            }
            #expect(try await probe(good.port) == nil)
            let refused = try await probe(untrusted.port)
            #expect(refused?.description.hasPrefix("TLS handshake with the upstream failed: ") == true, "\(String(describing: refused))")
            #expect(refused?.kind == .connect)
            #expect(try await probe(hung.port) == .timeout)
        }
    }

    /// An `https://` upstream that closes TCP without TLS close_notify after a body
    /// that ends at the close (Python's `ssl` sockets, many HTTP/1.0 servers) answered
    /// whole, as over plain TCP and as nginx and HAProxy take it — until 2026-12-05
    /// each such answer counted as a reset and the upstream was ejected after five.
    /// A body framed by Content-Length and cut short that way is still cut short.
    @Test func aCloseWithoutCloseNotifyEndsABodyThatEndsAtTheClose() async throws {
        try await withHandshakeUpstreams { good, _, _, credentials in
            let config = try makeConfig(upstreams: ["https://localhost:\(good.port)"]) {
                $0.upstreamTLS.caFile = credentials.certificatePath
                $0.healthCheck.passive.enabled = true
                $0.healthCheck.passive.consecutiveFailures = 2
            }
            try await withGateway(config, group: gatewayGroup) { gateway in
                for index in 0..<3 {
                    let outcome = try await RawClient.exchange(
                        "GET /raw/untilclose?ragged HTTP/1.1\r\nHost: h\r\nX-N: \(index)\r\nConnection: close\r\n\r\n", with: gateway.address, group: group)
                    #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(outcome.text)")
                    #expect(outcome.text.hasSuffix("\r\n\r\nstream until close"), "\(outcome.text)")
                    #expect(outcome.error == nil)
                }
                // A keep-alive client gets it re-chunked, its last chunk sent at the ragged close.
                let (channel, sink) = try await RawClient.open(with: gateway.address, group: group)
                try await channel.writeAndFlush(ByteBuffer(string: "GET /raw/untilclose?ragged HTTP/1.1\r\nHost: h\r\n\r\n"))
                try await sink.waitFor("\r\n\r\n12\r\nstream until close\r\n0\r\n\r\n", on: channel.eventLoop)
                try await channel.close()
                var metrics = try await gateway.metrics()
                #expect(metrics[#"fluxgate_upstream_failures_total{upstream="localhost:\#(good.port)",kind="reset"}"#] == 0, "\(metrics)")
                #expect(metrics[#"fluxgate_upstream_ejections_total{upstream="localhost:\#(good.port)"}"#] == 0)
                #expect(metrics[#"fluxgate_request_outcomes_total{outcome="proxied"}"#] == 4)
                // 10 of 100 announced bytes, then the same close: cut short, counted.
                let short = try await RawClient.exchange(
                    "GET /raw/shortbody?ragged HTTP/1.1\r\nHost: h\r\n\r\n", with: gateway.address, group: group)
                #expect(short.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(short.text)")
                #expect(short.text.hasSuffix("\r\n\r\n0123456789"), "\(short.text)")
                metrics = try await gateway.metrics()
                #expect(metrics[#"fluxgate_upstream_failures_total{upstream="localhost:\#(good.port)",kind="reset"}"#] == 1)
                #expect(metrics[#"fluxgate_request_outcomes_total{outcome="cut_off"}"#] == 1)
            }
        }
    }

    /// An `https://` upstream whose name gains an address (`dns.refresh`): the new
    /// member speaks TLS as its sibling does, verified against the name in the URL
    /// (`localhost`), not the address it connects to.
    /// `tls.verify_client` (mutual TLS on the listener): with `on`, a client whose
    /// certificate chains to `client_ca_file` is served and the upstream learns who it is
    /// (`X-Forwarded-Client-Cert`, Envoy's format; a client's own field of that name is
    /// dropped), one that sent none is answered 400 `client_certificate_required`, one
    /// whose certificate is not trusted fails the handshake; reloaded to `optional`, a
    /// client without one is served, and nothing is claimed for it.
    @Test func clientsAreAskedForACertificateTheUpstreamLearnsOf() async throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let client = try Credentials.make(in: dir, name: "client-a")
        let stranger = try Credentials.make(in: dir, name: "stranger")
        let accessLog = dir.appendingPathComponent("access.log").path
        try await withTLSGateway({
            $0.tls.verifyClient = .on
            $0.tls.clientCAFile = client.certificatePath
            $0.accessLog.enabled = true
            $0.accessLog.path = accessLog
        }) { gateway, upstream, credentials, _, config in
            func request(_ path: String, _ extra: String = "") -> String { "GET \(path) HTTP/1.1\r\nHost: h\r\n\(extra)Connection: close\r\n\r\n" }
            /// The head the upstream received for `path`; empty when none came.
            func received(_ path: String) -> String {
                let raw = upstream.raw
                guard let start = raw.range(of: "GET \(path) ") else { return "" }
                let rest = raw[start.lowerBound...]
                return String(rest[..<(rest.range(of: "\r\n\r\n")?.upperBound ?? rest.endIndex)])
            }
            let forged = "X-Forwarded-Client-Cert: Hash=forged\r\n"
            let with = try await tlsExchange(request("/with", forged), to: gateway.address, trusting: credentials.certificate, presenting: client)
            #expect(with.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(with.text)")
            let hash = SHA256.hash(data: try client.certificate.toDERBytes()).map { ForwardedClientCertificate.hex($0) }.joined()
            let field = "x-forwarded-client-cert: Hash=\(hash);Subject=\"CN=client-a\";DNS=\"localhost\"\r\n"
            #expect(received("/with").contains("\r\n" + field), "\(received("/with"))")
            #expect(!received("/with").contains("forged"))
            let without = try await tlsExchange(request("/without"), to: gateway.address, trusting: credentials.certificate)
            #expect(
                without.text.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && without.text.contains("client_certificate_required"), "\(without.text)")
            let strangers = try await tlsExchange(request("/stranger"), to: gateway.address, trusting: credentials.certificate, presenting: stranger)
            #expect(!strangers.text.contains("HTTP/1.1"), "\(strangers.text)")
            #expect(received("/without").isEmpty && received("/stranger").isEmpty)
            var optional = config
            optional.tls.verifyClient = .optional
            let reload = await gateway.gateway.reload(optional)
            #expect(reload.succeeded && reload.changes == ["tls", "tls certificate and key read again"], "\(reload)")
            let anonymous = try await tlsExchange(request("/anonymous", forged), to: gateway.address, trusting: credentials.certificate)
            #expect(anonymous.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(anonymous.text)")
            #expect(!received("/anonymous").isEmpty && !received("/anonymous").lowercased().contains("x-forwarded-client-cert"))
            let known = try await tlsExchange(request("/known"), to: gateway.address, trusting: credentials.certificate, presenting: client)
            #expect(known.text.hasPrefix("HTTP/1.1 200 OK\r\n") && received("/known").contains(field), "\(received("/known"))")
        }
        // The access log names the verified client (nginx's `$ssl_client_s_dn`); the stop
        // wrote every buffered line.
        let lines = try String(contentsOfFile: accessLog, encoding: .utf8).split(separator: "\n")
        func line(_ path: String) -> Substring? { lines.first { $0.contains(" path=\(path) ") } }
        for path in ["/with", "/known"] {
            #expect(line(path)?.contains(#"client=127.0.0.1 client_cert="CN=client-a" method=GET"#) == true, "\(lines)")
        }
        for path in ["/without", "/anonymous"] {
            #expect(line(path).map { !$0.contains("client_cert") } == true, "\(lines)")
        }
    }

    /// A certificate's names travel quoted in `X-Forwarded-Client-Cert`, and nothing in
    /// them can end the field: a quote and a backslash are escaped, a CR, an LF and any
    /// byte outside printable ASCII written as `\xHH`.
    @Test func aCertificatesNamesCannotEndTheField() {
        #expect(ForwardedClientCertificate.quoted("CN=a,O=b") == #""CN=a,O=b""#)
        #expect(ForwardedClientCertificate.quoted(#"CN="x\y""#) == #""CN=\"x\\y\"""#)
        #expect(ForwardedClientCertificate.quoted("CN=a\r\nx-admin: 1") == #""CN=a\x0d\x0ax-admin: 1""#)
        #expect(ForwardedClientCertificate.quoted("CN=é") == #""CN=\xc3\xa9""#)
    }

    @Test func aNewMemberOfAnHTTPSUpstreamSpeaksTLS() async throws {
        let credentials = try Credentials.make(in: try folder(), name: "upstream")
        let serverContext = try credentials.serverContext()
        let a = try await TestUpstream.start(name: "a", group: group, tls: serverContext)
        let b = try await TestUpstream.start(name: "b", group: group, tls: serverContext)
        let config = try makeConfig(upstreams: ["https://localhost:\(a.port)"]) { $0.upstreamTLS.caFile = credentials.certificatePath }
        try await withGateway(config, group: gatewayGroup) { gateway in
            let server = gateway.gateway
            let added = await server.refreshAddresses { _, _ in
                try [a.port, b.port].map { try SocketAddress(ipAddress: "127.0.0.1", port: $0) }
            }
            #expect(added == [1])
            #expect(server.runtime.settings.upstreamTLS.map { $0?.serverName } == ["localhost", "localhost"])
            var instances: [String] = []
            for index in 0..<4 {
                let outcome = try await RawClient.exchange(
                    "GET /m\(index) HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: gateway.address, group: group)
                #expect(outcome.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(outcome.text)")
                if let range = outcome.text.range(of: #"{"instance":""#) { instances.append(String(outcome.text[range.upperBound...].prefix(1))) }
            }
            #expect(instances.sorted() == ["a", "a", "b", "b"])
        }
        try await a.stop()
        try await b.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// Each file's problem is named by its key; a key that is not the certificate's is
    /// called a mismatch (BoringSSL's words were "failedToLoadPrivateKey") — for the
    /// listener's certificate (`tls`) and the client certificates for `https://`
    /// upstreams (`upstream_tls`) and for `rediss://` (`cluster`) alike.
    @Test func aKeyThatIsNotTheCertificatesIsAMismatch() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, b) = (try Credentials.make(in: dir, name: "a"), try Credentials.make(in: dir, name: "b"))
        for (certificateKey, keyKey) in [("tls.certificate", "tls.key"), ("upstream_tls.certificate", "upstream_tls.key"), ("cluster.tls_certificate", "cluster.tls_key")] {
            func problem(certificate: String, key: String) throws -> [String] {
                var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"https://127.0.0.1:9\"}]")
                switch certificateKey {
                case "tls.certificate": (config.tls.certificate, config.tls.key) = (certificate, key)
                case "upstream_tls.certificate": (config.upstreamTLS.certificate, config.upstreamTLS.key) = (certificate, key)
                default:
                    config.cluster = try ConfigLoader.load(yaml: "cluster: { redis_url: \"rediss://127.0.0.1:9\" }").cluster
                    (config.cluster.tlsCertificate, config.cluster.tlsKey) = (certificate, key)
                }
                return StartupProblems.check(config, resolve: false).map(\.description)
            }
            #expect(try problem(certificate: a.certificatePath, key: a.keyPath).isEmpty)
            #expect(try problem(certificate: a.certificatePath, key: b.keyPath) == [
                "\(keyKey): \(b.keyPath) is not the private key of the certificate in \(a.certificatePath) (they do not match)"
            ])
            #expect(try problem(certificate: a.keyPath, key: a.certificatePath).first?.hasPrefix("\(certificateKey): cannot load \(a.keyPath) as PEM certificates") == true)
            #expect(try problem(certificate: a.certificatePath, key: a.certificatePath).first?.hasPrefix("\(keyKey): cannot load \(a.certificatePath) as a PEM private key") == true)
        }
    }

    /// `tls.client_ca_file` that holds no certificate, or is not PEM, is named by its key
    /// (check-config, start and reload), not as the listener's files all together.
    @Test func aClientCAFileWithoutACertificateIsNamed() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Credentials.make(in: dir, name: "server")
        let junk = dir.appendingPathComponent("junk.pem").path
        func problems(_ ca: String) throws -> [String] {
            var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
            (config.tls.certificate, config.tls.key) = (server.certificatePath, server.keyPath)
            (config.tls.verifyClient, config.tls.clientCAFile) = (.on, ca)
            return StartupProblems.check(config, resolve: false).map(\.description)
        }
        #expect(try problems(server.certificatePath).isEmpty)
        try "not a certificate\n".write(toFile: junk, atomically: true, encoding: .utf8)
        #expect(try problems(junk).first?.hasPrefix("tls.client_ca_file: cannot load \(junk) as PEM certificates") == true)
        #expect(try problems(server.keyPath).first?.hasPrefix("tls.client_ca_file: cannot load \(server.keyPath) as PEM certificates") == true)
        try "".write(toFile: junk, atomically: true, encoding: .utf8)
        let empty = try problems(junk)
        #expect(empty == ["tls.client_ca_file: no certificate in \(junk)"] || empty.first?.hasPrefix("tls.client_ca_file: cannot load \(junk)") == true, "\(empty)")
    }

    /// check-config and the start warn of a listener certificate that expires within 14
    /// days or has expired (clients refuse it; the gateway serves it, as nginx does).
    @Test func aCertificateNearItsEndIsWarnedOf() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let credentials = try Credentials.make(in: dir, name: "soon", validFor: 3 * 86_400)
        var tls = TLSConfig()
        tls.certificate = credentials.certificatePath
        tls.key = credentials.keyPath
        let server = try #require(try TLSContexts.server(tls))
        let end = server.notValidAfter
        #expect(end == Int64(credentials.certificate.notValidAfter))
        #expect(TLSContexts.expiryWarning(server, certificate: "c.pem", now: end - 3 * 86_400) == "tls.certificate: c.pem expires in 3 day(s) (72 hours)")
        #expect(TLSContexts.expiryWarning(server, certificate: "c.pem", now: end + 86_400) == "tls.certificate: c.pem expired 1 day(s) ago; clients will refuse it")
        #expect(TLSContexts.expiryWarning(server, certificate: "c.pem", now: end - 15 * 86_400) == nil)
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.tls = tls
        #expect(StartupProblems.warnings(config, lookup: nil, now: end - 86_400) == ["tls.certificate: \(credentials.certificatePath) expires in 1 day(s) (24 hours)"])
    }

    @Test func configNamesTLSProblems() {
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "tls: { certificate: /nonexistent.pem, key: /nonexistent.key }") }
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "tls: { certificate: /etc/hostname }") }
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "tls: { min_version: \"1.1\" }") }
        #expect((try? ConfigLoader.load(yaml: "upstreams: [{ url: \"https://example.com\" }]"))?.upstreams[0].url.endpoint.port == 443)
    }
}
