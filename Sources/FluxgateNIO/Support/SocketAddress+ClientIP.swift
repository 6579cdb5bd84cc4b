import NIOCore

extension SocketAddress {
    /// The peer's IP address as the gateway shows and keys it: an IPv4 client of a
    /// dual-stack listener (`[::]`), which the socket reports as the IPv4-mapped
    /// `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), as its IPv4 address — as Envoy does for its
    /// `ipv4_compat` listeners — so `X-Forwarded-For`, the access log, per-client limits
    /// and `trusted_proxies` see one client in one form whichever listener it came in by.
    var clientIP: String? {
        guard case .v6(let v6) = self else { return ipAddress }
        var address = v6.address.sin6_addr
        let mapped: String? = withUnsafeBytes(of: &address) { raw in
            guard raw.count == 16, raw[0..<10].allSatisfy({ $0 == 0 }), raw[10] == 0xFF, raw[11] == 0xFF else { return nil }
            return "\(raw[12]).\(raw[13]).\(raw[14]).\(raw[15])"
        }
        return mapped ?? ipAddress
    }
}
