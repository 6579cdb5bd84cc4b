import FluxgateCore
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listener that could not open, named by what it is — `listen 0.0.0.0:8080:
/// address already in use (errno 98)` — instead of NIO's `bind(descriptor:ptr:bytes:):
/// Address already in use) (errno: 98)`, which does not say which of the gateway's
/// listeners (data, admin, embedded demo) it was.
public struct ListenerError: Error, CustomStringConvertible {
    public let what: String
    public let underlying: any Error

    public init(_ what: String, _ underlying: any Error) {
        self.what = what
        self.underlying = underlying
    }

    public var description: String { "\(what): \(StartupProblems.reason(underlying))" }

    /// Runs `open`, naming `what` in the error it throws.
    public static func naming<T>(_ what: String, _ open: () async throws -> T) async throws -> T {
        do {
            return try await open()
        } catch {
            throw ListenerError(what, error)
        }
    }
}

/// What a configuration needs from the machine beyond its own text — upstream host
/// names that resolve, TLS files that load — checked without starting anything, as
/// `nginx -t` resolves its upstreams and loads its certificates: `fluxgate check-config`
/// reports these with the file's own errors, and the gateway checks them before it
/// opens a listener, so a bad name is a clear refusal naming its key rather than a
/// resolver error from deep in the start.
public enum StartupProblems {
    /// - Parameter resolve: resolve the upstreams' names (false for a file meant for
    ///   another network, such as a Kubernetes ConfigMap checked in CI).
    public static func check(_ config: GatewayConfig, resolve: Bool = true) -> [ConfigError] {
        check(config, lookup: resolve ? { try AddressLookup.candidates($0, port: $1, family: $2) } : nil)
    }

    /// `lookup` nil: no name is resolved.
    static func check(_ config: GatewayConfig, lookup: GatewaySettings.Lookup?) -> [ConfigError] {
        var problems: [ConfigError] = []
        let configured = !config.upstreams.isEmpty
        // Each name is looked up once: here, then for the members' placement below.
        var found: [SocketEndpoint: [SocketAddress]] = [:]
        for (index, upstream) in config.effectiveUpstreams.enumerated() {
            guard let lookup else { break }
            let endpoint = upstream.url.endpoint
            do {
                if found[endpoint] == nil { found[endpoint] = try lookup(endpoint.host, endpoint.port, config.dns.family) }
            } catch {
                problems.append(
                    ConfigError(
                        path: configured ? "upstreams[\(index)].url" : "demo",
                        message: unresolvable(endpoint.host, error)))
            }
        }
        if let lookup, problems.isEmpty {
            // Each name's members and their slots, as the start places them: more than
            // ``UpstreamSlots/maxSlots`` members in all (names with many addresses) is
            // refused there, so here too.
            do {
                let placements = try GatewaySettings.place(config, previous: nil) { host, port, family in
                    try found[SocketEndpoint(host: host, port: port)] ?? lookup(host, port, family)
                }.placements
                _ = try GatewaySettings.assign(placements, previous: nil)
            } catch let error as ConfigError {
                problems.append(error)
            } catch {
                problems.append(ConfigError(path: "upstreams", message: "\(error)"))
            }
        }
        do {
            _ = try TLSContexts.server(config.tls)
        } catch {
            problems.append(ConfigError(path: "", message: error.description))  // names its key
        }
        if config.effectiveUpstreams.contains(where: { $0.url.tls }) {
            do {
                _ = try TLSContexts.upstream(config.upstreamTLS)
            } catch {
                problems.append(ConfigError(path: "", message: error.description))
            }
        }
        // Cluster mode's rediss:// context: its CA file and client certificate load here,
        // not first at the start (a restart-only section: a reload never builds it).
        if config.cluster.enabled {
            do {
                _ = try TLSContexts.redis(config.cluster)
            } catch {
                problems.append(ConfigError(path: "", message: error.description))
            }
        }
        if let problem = accessLogProblem(config.accessLog) { problems.append(problem) }
        return problems
    }

    /// An access-log file that cannot be opened for appending refuses the start, the
    /// check and a reload, as `nginx -t` fails on a log it cannot open — instead of a
    /// gateway that runs with one error line at start and no access log. Opening
    /// creates the file, as the gateway would (nginx's test does too).
    public static func accessLogProblem(_ accessLog: AccessLogConfig) -> ConfigError? {
        guard accessLog.enabled, accessLog.path != "-" else { return nil }
        let fd = open(accessLog.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        let code = errno
        guard fd < 0 else {
            close(fd)
            return nil
        }
        return ConfigError(
            path: "access_log.path",
            message: "cannot open \(accessLog.path) for appending: \(reason(IOError(errnoCode: code, reason: "open")))")
    }

    /// What `check-config` warns of without failing: upstream host names that list more
    /// addresses than their `addresses` takes, so some replicas would get no traffic
    /// (the start, a reload and `dns.refresh` log the same). Not for `addresses: first`,
    /// which asks for one of many; a name that does not resolve is ``check(_:resolve:)``'s.
    /// Also: a listener certificate that has expired or expires within 14 days.
    public static func warnings(_ config: GatewayConfig, resolve: Bool = true) -> [String] {
        let lookup: GatewaySettings.Lookup? = resolve ? { try AddressLookup.candidates($0, port: $1, family: $2) } : nil
        return warnings(config, lookup: lookup, now: Int64(time(nil)))
    }

    static func warnings(_ config: GatewayConfig, lookup: GatewaySettings.Lookup?, now: Int64) -> [String] {
        var warnings: [String] = []
        if let server = try? TLSContexts.server(config.tls),
            let expiry = TLSContexts.expiryWarning(server, certificate: config.tls.certificate, now: now)
        {
            warnings.append(expiry)
        }
        if let unused = unusedUpstreamTLS(config) { warnings.append(unused) }
        guard let lookup else { return warnings }
        for (index, upstream) in config.effectiveUpstreams.enumerated() where upstream.maxAddresses > 1 {
            let endpoint = upstream.url.endpoint
            if (try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port)) != nil { continue }
            guard let found = try? lookup(endpoint.host, endpoint.port, config.dns.family), found.count > upstream.maxAddresses else { continue }
            warnings.append(
                "upstreams[\(index)].addresses: host \"\(endpoint.host)\" lists \(found.count) addresses and \(upstream.maxAddresses) are taken;"
                    + " the others get no traffic (raise upstreams[\(index)].addresses, at most \(UpstreamConfig.addressesRange.upperBound))")
        }
        return warnings
    }

    /// `upstream_tls` set away from its defaults while no upstream is `https://`: its
    /// files are read and watched and do nothing — most likely an upstream meant as
    /// `https://` written as `http://`, whose traffic then goes in clear.
    static func unusedUpstreamTLS(_ config: GatewayConfig) -> String? {
        guard config.upstreamTLS != UpstreamTLSConfig(), !config.effectiveUpstreams.contains(where: { $0.url.tls }) else { return nil }
        let keys = [
            config.upstreamTLS.presentsCertificate ? "certificate" : nil, config.upstreamTLS.caFile.isEmpty ? nil : "ca_file",
            config.upstreamTLS.verify ? nil : "verify",
        ].compactMap { $0 }.map { "upstream_tls.\($0)" }
        return "\(keys.joined(separator: ", ")): no upstream is https://, so \(keys.count == 1 ? "it does" : "they do") nothing (an upstream meant as https:// but written http:// is spoken to in clear)"
    }

    /// The words for a host name that does not resolve (check-config, the start, a reload).
    static func unresolvable(_ host: String, _ error: any Error) -> String {
        if let unresolved = error as? AddressLookup.Unresolved { return unresolved.description }
        return "host \"\(host)\" does not resolve: \(reason(error))"
    }

    /// An error in words: the system's text for an errno (lowercased, as in a sentence), else the error's own.
    /// (NIO's own `IOError` text has a stray parenthesis: "…: No space left on device) (errno: 28)".)
    static func reason(_ error: any Error) -> String {
        if let io = error as? IOError {
            return "\(errnoWords(io.errnoCode)) (errno \(io.errnoCode))"
        }
        if let unknown = error as? SocketAddressError.UnknownHost {
            return unknown.errorDescription.lowercased()
        }
        return "\(error)"
    }
}
