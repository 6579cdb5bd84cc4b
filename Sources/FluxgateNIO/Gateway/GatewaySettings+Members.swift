import FluxgateCore
import FluxgateNIOSupport
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
        let (placements, overListed) = try place(config, previous: previous, lookup: lookup)
        let (assignment, targets) = try assign(placements, previous: previous)
        let settings = try GatewaySettings(version: version, config: config, upstreams: assignment.slots, targets: targets, overListed: overListed, previous: previous)
        return (settings, assignment)
    }

    /// Each configured upstream's members at their addresses (looked up unless kept from
    /// `previous`), and the names listing more addresses than they take.
    static func place(
        _ config: GatewayConfig, previous: GatewaySettings?, lookup: Lookup
    ) throws -> (placements: [(UpstreamConfig, [Int: SocketAddress])], overListed: [String: Int]) {
        var placements: [(UpstreamConfig, [Int: SocketAddress])] = []
        var overListed: [String: Int] = [:]
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
                    // As `dns.refresh` warns (``AddressRefresh``): not for `addresses: first`.
                    if upstream.maxAddresses > 1, found.count > upstream.maxAddresses { overListed[upstream.name] = found.count }
                    placed = UpstreamMembers.place(inForce: inForce, found: found, limit: upstream.maxAddresses)
                } catch {
                    throw ConfigError(path: "upstream \(upstream.url)", message: StartupProblems.unresolvable(endpoint.host, error))
                }
            }
            placements.append((upstream, placed))
        }
        return (placements, overListed)
    }

    /// The members' slots after `previous`'s (``UpstreamSlots``); too many is an error
    /// naming `upstreams`.
    static func assign(
        _ placements: [(UpstreamConfig, [Int: SocketAddress])], previous: GatewaySettings?
    ) throws(ConfigError) -> (UpstreamSlots.Assignment, [SocketAddress]) {
        do {
            return try UpstreamSlots.assign(previous: previous?.upstreams ?? [], at: previous?.targets ?? [], placements: placements)
        } catch {
            throw ConfigError(path: "upstreams", message: "\(error)")
        }
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
