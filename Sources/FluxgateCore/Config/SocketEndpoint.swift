/// A `host:port` pair as written in `listen`, `admin_listen` and upstream URLs.
///
/// Accepted forms: `0.0.0.0:8080`, `127.0.0.1:9090`, `[::1]:8080`, `localhost:8080`;
/// for a listener also `:8080` and `*:8080` (all IPv4 interfaces, as nginx's
/// `listen 8080` and `listen *:8080`, HAProxy's `bind *:8080`).
public struct SocketEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// An address to connect to: a host is required, and `*` is not one (before
    /// 2026-12-04 a listener's `*` went to the resolver, which on one machine answered
    /// 127.0.0.1: the gateway listened on loopback only, without a word).
    public static func parse(_ text: String) -> SocketEndpoint? {
        guard let (host, port) = split(text), !host.isEmpty, host != "*" else { return nil }
        return SocketEndpoint(host: String(host), port: port)
    }

    /// An address to listen on: as ``parse(_:)``, and an empty host or `*` is every
    /// IPv4 interface, `0.0.0.0`.
    public static func parseListen(_ text: String) -> SocketEndpoint? {
        guard let (host, port) = split(text) else { return nil }
        return SocketEndpoint(host: host.isEmpty || host == "*" ? "0.0.0.0" : String(host), port: port)
    }

    private static func split(_ text: String) -> (host: Substring, port: Int)? {
        let text = text.trimmingSpaces()
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }  // bare IPv6 must be bracketed
        }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        if host.contains(where: { $0 == " " || $0 == "/" }) || (host.contains("*") && host != "*") { return nil }
        return (host, port)
    }

    /// The host as a URL or `Host` writes it: an IPv6 literal in brackets.
    public var hostLiteral: String { host.contains(":") ? "[\(host)]" : host }

    /// `host:port`, with IPv6 literals in brackets.
    public var description: String { "\(hostLiteral):\(port)" }
}

/// An upstream address from `url: "http://host:port"`.
public struct UpstreamURL: Hashable, Sendable, CustomStringConvertible {
    public var endpoint: SocketEndpoint
    /// `https://`: the gateway speaks TLS to this upstream (`upstream_tls`).
    public var tls = false

    public init(endpoint: SocketEndpoint, tls: Bool = false) {
        self.endpoint = endpoint
        self.tls = tls
    }

    /// `http://host[:port]` or `https://host[:port]` (ports 80 and 443 by default); a
    /// path, a query or credentials are refused with a message rather than ignored.
    public static func parse(_ text: String) -> Result<UpstreamURL, ParseFailure> {
        let text = text.trimmingSpaces()
        let tls = text.lowercased().hasPrefix("https://")
        guard tls || text.lowercased().hasPrefix("http://") else {
            return .failure(.init("expected http://host:port or https://host:port, got \"\(text)\""))
        }
        var authority = Substring(text.dropFirst(tls ? "https://".count : "http://".count))
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        if authority.contains("/") || authority.contains("?") || authority.contains("@") {
            return .failure(.init("expected http://host:port without path, query or credentials, got \"\(text)\""))
        }
        let withPort: String
        if authority.hasSuffix("]") || !authority.contains(":") {
            withPort = authority + (tls ? ":443" : ":80")
        } else {
            withPort = String(authority)
        }
        guard let endpoint = SocketEndpoint.parse(withPort), endpoint.port > 0 else {
            return .failure(.init("expected http://host:port with a host and a port in 1...65535, got \"\(text)\""))
        }
        return .success(UpstreamURL(endpoint: endpoint, tls: tls))
    }

    public var description: String { "\(tls ? "https" : "http")://\(endpoint)" }

    public struct ParseFailure: Error, Sendable {
        public var message: String
        init(_ message: String) { self.message = message }
    }
}

extension SocketEndpoint {
    /// A listener on every interface of its family: `0.0.0.0` or `::`.
    public var isWildcard: Bool { host == "0.0.0.0" || host == "::" || host == "[::]" }

    /// Whether binding both would collide: one port (not 0, which asks the kernel for a
    /// free one), and the same host or a wildcard (`0.0.0.0`, `::`) on either side.
    func sharesPort(with other: SocketEndpoint) -> Bool {
        guard port == other.port, port != 0 else { return false }
        return host == other.host || isWildcard || other.isWildcard
    }
}
