import FluxgateCore
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// An upstream host name's addresses, as the C library's resolver gives them (what
/// start, reload, `dns.refresh` and `check-config` use). NIO's
/// `SocketAddress.makeAddressResolvingHost` returns only the resolver's first address,
/// so `dns.family` could not be applied on top of it: this asks `getaddrinfo` for all of
/// them (stream sockets only, so each address comes once) and lets the pure
/// ``AddressFamilyPreference`` order them. Blocking: callers run it where blocking is
/// allowed (start, reload, NIO's thread pool).
enum AddressLookup {
    /// The usable addresses, best first; throws when the name does not resolve or has
    /// no address of an accepted family.
    /// An IP address given as the host is used as written, whatever `family` says.
    static func candidates(_ host: String, port: Int, family: AddressFamilyPreference) throws -> [SocketAddress] {
        if let literal = try? SocketAddress(ipAddress: host, port: port) { return [literal] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &info)
        guard rc == 0 else {
            throw Unresolved(host: host, reason: "does not resolve: \(String(cString: gai_strerror(rc)).lowercased())")
        }
        defer { freeaddrinfo(info) }
        var found: [(family: AddressFamilyPreference.Family, address: SocketAddress)] = []
        var next = info
        while let entry = next {
            defer { next = entry.pointee.ai_next }
            guard let pointer = entry.pointee.ai_addr else { continue }
            let bytes = UnsafeRawPointer(pointer)
            switch entry.pointee.ai_family {
            case AF_INET: found.append((.v4, SocketAddress(bytes.load(as: sockaddr_in.self), host: host)))
            case AF_INET6: found.append((.v6, SocketAddress(bytes.load(as: sockaddr_in6.self), host: host)))
            default: continue
            }
        }
        let usable = family.candidates(found)
        guard !usable.isEmpty else { throw Unresolved(host: host, reason: family.noAddressReason) }
        return usable
    }

    /// The best of ``candidates(_:port:family:)``.
    static func address(_ host: String, port: Int, family: AddressFamilyPreference) throws -> SocketAddress {
        try candidates(host, port: port, family: family)[0]
    }

    /// The name does not resolve, or has no address `dns.family` accepts.
    struct Unresolved: Error, CustomStringConvertible {
        var host: String
        var reason: String
        var description: String { "host \"\(host)\" \(reason)" }
    }
}
