/// The members of an upstream written with a host name: each of the name's addresses
/// (up to `addresses`, ``UpstreamConfig/maxAddresses``) is a replica of its own — its own
/// slot, health, pool and share of capacity, with the entry's `max_concurrency` and
/// `weight` — as nginx makes a server of each address a name has, Envoy a host of each
/// in a `STRICT_DNS` cluster and HAProxy a server of each slot of a `server-template`.
/// A headless Kubernetes Service, which lists one address per ready pod, is spread over
/// without listing the pods.
///
/// Members are numbered from 0 and keep their number while their address is listed,
/// so a member's slot, health state and metrics series stay put while the name's other
/// addresses come and go; the first is called by the upstream's name, the k-th (from 1)
/// `name#k`, HAProxy's `server-template` numbering. Pure and generic over the address,
/// so it is tested without a resolver.
public enum UpstreamMembers {
    /// The name of `group`'s member `member` (from 0): `app`, `app#2`, `app#3`, …
    public static func name(_ group: String, member: Int) -> String {
        member == 0 ? group : "\(group)#\(member + 1)"
    }

    /// Which address each member serves after a lookup found `found` (the usable
    /// addresses, best first, ``AddressFamilyPreference/candidates(_:)``), given the
    /// members in force: a member whose address is still listed keeps it (so a DNS
    /// server rotating a name's records moves nothing); the addresses not yet served
    /// fill the lowest free member numbers, in the lookup's order, up to `limit`
    /// members; a member whose address is gone and that no new address fills is
    /// dropped (its slot retires until the name has that many addresses again).
    /// `found` must not be empty — a failed lookup keeps the members in force.
    ///
    /// | in force          | found       | limit | result                   |
    /// |-------------------|-------------|-------|--------------------------|
    /// | —                 | A, B, C     | 32    | 0: A, 1: B, 2: C         |
    /// | 0: A, 1: B, 2: C  | C, A, B     | 32    | unchanged (rotated)      |
    /// | 0: A, 1: B, 2: C  | A, C        | 32    | 0: A, 2: C               |
    /// | 0: A, 2: C        | D, A, C     | 32    | 0: A, 1: D, 2: C         |
    /// | 0: A              | B, C        | 1     | 0: B                     |
    /// | 0: A, 1: B        | A, B        | 1     | 0: A (limit lowered)     |
    public static func place<Address: Equatable>(inForce: [Int: Address], found: [Address], limit: Int) -> [Int: Address] {
        var placed: [Int: Address] = [:]
        for (member, address) in inForce where member < limit && found.contains(address) {
            placed[member] = address
        }
        var member = 0
        for address in found where placed.count < limit && !placed.values.contains(address) {
            while placed[member] != nil { member += 1 }
            placed[member] = address
        }
        return placed
    }
}
