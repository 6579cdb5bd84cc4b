import FluxgateCore
import NIOCore

/// Where the upstreams' slots and addresses come from at start and at a reload: each
/// configured upstream's members (``UpstreamMembers``: one per address of its host
/// name, up to its `addresses`), each in its slot (``UpstreamSlots``).
extension GatewaySettings {
    /// A name's usable addresses, best first (``AddressLookup/candidates(_:port:family:)``).
    typealias Lookup = (_ host: String, _ port: Int, _ family: AddressFamilyPreference) throws -> [SocketAddress]

    /// The settings for `config`: the first (`previous` nil) or a reload's. An upstream
    /// kept from `previous` (same name and URL, same `addresses`, same `dns.family`)
    /// keeps its members and their addresses without a lookup — a name that stops
    /// resolving must not fail a reload that did not touch it (`dns.refresh` follows
    /// it); every other one is looked up, and a name that does not resolve is an error
    /// naming the upstream. Blocking (the lookups): called at start and by a reload,
    /// never on an event loop.
    static func resolve(
        _ config: GatewayConfig, version: Int, previous: GatewaySettings?,
        lookup: Lookup = AddressLookup.candidates
    ) throws -> (GatewaySettings, UpstreamSlots.Assignment) {
        var members: [(upstream: UpstreamConfig, member: Int)] = []
        var addresses: [SocketAddress] = []
        for upstream in config.effectiveUpstreams {
            let inForce = previous?.members(of: upstream) ?? [:]
            let placed: [Int: SocketAddress]
            if !inForce.isEmpty, let previous, previous.config.dns.family == config.dns.family,
                previous.upstreams.contains(where: { !$0.retired && $0.group == upstream.name && $0.url == upstream.url && $0.maxAddresses == upstream.maxAddresses })
            {
                placed = inForce
            } else {
                let endpoint = upstream.url.endpoint
                do {
                    let found = try lookup(endpoint.host, endpoint.port, config.dns.family)
                    placed = UpstreamMembers.place(inForce: inForce, found: found, limit: upstream.maxAddresses)
                } catch {
                    throw ConfigError(path: "upstream \(upstream.url)", message: StartupProblems.unresolvable(endpoint.host, error))
                }
            }
            for (member, address) in placed.sorted(by: { $0.key < $1.key }) {
                members.append((upstream, member))
                addresses.append(address)
            }
        }
        let assignment: UpstreamSlots.Assignment
        do {
            assignment = try UpstreamSlots.assign(previous: previous?.upstreams ?? [], members: members)
        } catch {
            throw ConfigError(path: "upstreams", message: "\(error)")
        }
        let targets = try assignment.slots.indices.map { index -> SocketAddress in
            let slot = assignment.slots[index]
            if let at = members.firstIndex(where: { slot.serves($0.upstream, member: $0.member) && !slot.retired }) { return addresses[at] }
            guard let previous, index < previous.targets.count else {
                throw ConfigError(path: "upstreams", message: "slot \(index) has no address")  // cannot happen: a new slot is a member
            }
            return previous.targets[index]
        }
        return (try GatewaySettings(version: version, config: config, upstreams: assignment.slots, targets: targets), assignment)
    }

    /// `upstream`'s members in force: member number → address (its live slots).
    func members(of upstream: UpstreamConfig) -> [Int: SocketAddress] {
        var found: [Int: SocketAddress] = [:]
        for index in upstreams.indices where !upstreams[index].retired && upstreams[index].group == upstream.name && upstreams[index].url == upstream.url {
            found[upstreams[index].member] = targets[index]
        }
        return found
    }

    /// `name=url` for logs, with the address connected to when the URL names a host:
    /// `app#2=http://app.svc:8080 (10.0.0.2:8080)`.
    func describeUpstream(_ index: Int) -> String {
        let slot = upstreams[index]
        let address = targets[index].hostPort
        return address == slot.url.endpoint.description ? "\(slot.name)=\(slot.url)" : "\(slot.name)=\(slot.url) (\(address))"
    }
}
