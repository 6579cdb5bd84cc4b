/// Which of a host name's addresses an upstream uses (`dns.family`), the choice kept
/// apart from the lookup so it is tested without a resolver.
///
/// Why it exists: on most Linux machines `/etc/hosts` maps `localhost` to `::1` as well
/// as to `127.0.0.1`, and the C library's resolver lists `::1` first (RFC 6724's
/// order). An upstream written as `http://localhost:9001` whose server listens on
/// 127.0.0.1 only was then refused on every connection and marked down, while `curl
/// localhost:9001` worked (it tries the next address). Names of Docker and Kubernetes
/// services are IPv4 in most clusters too. So the default takes an IPv4 address when
/// the name has one — Envoy's `V4_PREFERRED` lookup family; `auto` keeps the resolver's
/// order (Envoy's `AUTO` prefers IPv6 the same way).
///
/// | addresses found (resolver's order)   | v4_preferred | auto      | v4_only   | v6_only   |
/// |--------------------------------------|--------------|-----------|-----------|-----------|
/// | `::1`, `127.0.0.1`                   | `127.0.0.1`  | `::1`     | `127.0.0.1` | `::1`   |
/// | `10.0.0.2`, `10.0.0.1`               | `10.0.0.2`   | `10.0.0.2`| `10.0.0.2`| none: error |
/// | `fd00::5`                            | `fd00::5`    | `fd00::5` | none: error | `fd00::5` |
public enum AddressFamilyPreference: String, Sendable, CaseIterable {
    case v4Preferred = "v4_preferred"
    case auto
    case v4Only = "v4_only"
    case v6Only = "v6_only"

    public enum Family: Sendable, Equatable {
        case v4, v6
    }

    /// The addresses this preference accepts, best first, in the resolver's order:
    /// for `v4_preferred` the IPv4 ones when the name has any, else the others (Envoy's
    /// `V4_PREFERRED`: IPv6 is the fallback, not a second choice kept beside IPv4 — so
    /// `dns.refresh`, which keeps an address in force while it is listed, moves an
    /// upstream off an IPv6 address once the name gains an IPv4 one). Empty when the
    /// name has no address of an accepted family. Duplicates are dropped (a resolver
    /// lists an address once per socket type unless asked for one).
    public func candidates<Address: Equatable>(_ found: [(family: Family, address: Address)]) -> [Address] {
        let ordered: [(family: Family, address: Address)]
        switch self {
        case .auto: ordered = found
        case .v4Preferred:
            let v4 = found.filter { $0.family == .v4 }
            ordered = v4.isEmpty ? found : v4
        case .v4Only: ordered = found.filter { $0.family == .v4 }
        case .v6Only: ordered = found.filter { $0.family == .v6 }
        }
        var result: [Address] = []
        for entry in ordered where !result.contains(entry.address) { result.append(entry.address) }
        return result
    }

    /// What to say when a name has no address of an accepted family.
    public var noAddressReason: String {
        switch self {
        case .v4Only: "has no IPv4 address (dns.family is v4_only)"
        case .v6Only: "has no IPv6 address (dns.family is v6_only)"
        case .v4Preferred, .auto: "has no address"
        }
    }
}
