/// Which `Upgrade` requests may become tunnels (`limits.upgrade_protocols`; default
/// `websocket` alone).
///
/// An upgrade the gateway forwards and the upstream accepts turns the connection into
/// a byte tunnel to that upstream: what the client sends through it is never parsed,
/// admitted, rate-limited, routed or logged again. That is what a WebSocket needs; for
/// `h2c` (HTTP/2 over cleartext, RFC 7540 §3.2) it is "h2c smuggling" — a client
/// upgrades one request and then sends any number of HTTP/2 requests straight to an
/// h2c-capable upstream (Go's `h2c` handler, Tomcat, Jetty, Apache `mod_http2`)
/// past every rule of the proxy. Envoy forwards only the upgrade types it is
/// configured for (WebSocket is not even on by default) and removes `Upgrade: h2c`;
/// Fluxgate forwards only the listed protocols and serves any other upgrade request as
/// an ordinary request, its `Upgrade` removed — the upstream answers it in HTTP/1.1,
/// and a client that offered an upgrade must accept that (RFC 9110 §7.8).
/// Until 2026-12-05 every `Upgrade` on a `GET` was forwarded.
public struct UpgradeProtocols: Sendable, Equatable {
    /// Lower-cased protocol names, without versions.
    public let names: [String]

    public init(_ names: [String]) {
        self.names = names.map { $0.lowercased() }
    }

    public static let websocketOnly = UpgradeProtocols(["websocket"])

    /// Whether every protocol the `Upgrade` value lists (`name["/" version]`, comma
    /// separated; empty list elements ignored) is allowed; a value naming none is not.
    public func allow(_ value: some StringProtocol) -> Bool {
        var named = false
        for element in value.split(separator: ",") {
            let trimmed = element.trimmingSpaces()
            if trimmed.isEmpty { continue }
            let name = trimmed.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)[0].lowercased()
            guard names.contains(name) else { return false }
            named = true
        }
        return named
    }

    /// Whether `name` can be a protocol name: an RFC 9110 token (so no `/` version).
    public static func isValidName(_ name: String) -> Bool { HeaderName.isToken(name) }
}
