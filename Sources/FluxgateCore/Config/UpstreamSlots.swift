/// Stable indices for upstreams across reloads.
///
/// Everything on the data path names an upstream by index (the balancer's schedule,
/// the health board, the pools' idle lists, an exchange in flight, the per-loop
/// metrics). A reload must not move those indices under requests in flight, so each
/// upstream keeps its slot for as long as it is configured with the same name and
/// URL; a removed one is retired (no traffic, no probes, its in-flight requests
/// finish), a new one takes a new slot — or revives the retired slot of the same
/// name and URL. Slots are never reused for a different upstream, so at most
/// ``maxSlots`` distinct upstreams can be configured over a process's life.
public struct UpstreamSlot: Sendable, Equatable {
    /// What logs, metrics and `/stats` call it: the configured name for a name's first
    /// member (and for every upstream with one address), `name#k` for its k-th
    /// (``UpstreamMembers``).
    public var name: String
    /// The configured upstream's name (`upstreams[i].name`).
    public var group: String
    /// Which of the configured upstream's addresses this slot serves, from 0.
    public var member: Int
    public var url: UpstreamURL
    public var maxConcurrency: Int
    public var weight: Int
    /// The configured upstream's `addresses`.
    public var maxAddresses: Int
    /// The `Host` its requests and probes carry, or nil for the client's own (`host_header`).
    public var hostHeader: String?
    public var retired: Bool

    public init(_ upstream: UpstreamConfig, member: Int = 0, retired: Bool = false) {
        self.name = UpstreamMembers.name(upstream.name, member: member)
        self.group = upstream.name
        self.member = member
        self.url = upstream.url
        self.maxConcurrency = upstream.maxConcurrency
        self.weight = upstream.weight
        self.maxAddresses = upstream.maxAddresses
        self.hostHeader = upstream.hostHeader.value(for: upstream.url)
        self.retired = retired
    }

    /// Whether this slot serves `member` of `upstream` (its identity: name, URL, member).
    public func serves(_ upstream: UpstreamConfig, member: Int) -> Bool {
        group == upstream.name && url == upstream.url && self.member == member
    }
}

public enum UpstreamSlots {
    public static let maxSlots = 256

    public struct Assignment: Sendable, Equatable {
        public var slots: [UpstreamSlot]
        /// Slots that start over (new, revived after being retired, or a member of a
        /// name with several addresses whose address changed: another replica).
        public var fresh: [Int]
        /// Slots retired by this assignment.
        public var retired: [Int]
        /// Slots live before and after whose address changed (some of them fresh too:
        /// ``assign(previous:at:placements:)``); set only by that function.
        public var moved: [Int] = []
    }

    public struct TooManySlots: Error, Equatable, CustomStringConvertible {
        /// There were slots before (a reload, an address refresh): the ones retired
        /// since start count too. Without, the configuration alone has too many.
        public var sinceStart = true

        public var description: String {
            sinceStart
                ? "more than \(UpstreamSlots.maxSlots) distinct upstreams (name, url and address member) since start; restart to configure more"
                : "more than \(UpstreamSlots.maxSlots) upstreams in all, counting each address of a host name with several as one (its `addresses`)"
        }
    }

    /// Slots for every member of the configured upstreams (a host name with several
    /// addresses has several, ``UpstreamMembers``) after a reload or an address refresh
    /// from `previous`: a member keeps its slot while its upstream keeps its name and
    /// URL, whatever its address becomes.
    public static func assign(previous: [UpstreamSlot], members: [(upstream: UpstreamConfig, member: Int)]) throws(TooManySlots) -> Assignment {
        var slots = previous
        var fresh: [Int] = []
        var kept = Set<Int>()
        for (upstream, member) in members {
            if let index = slots.indices.first(where: { !kept.contains($0) && slots[$0].serves(upstream, member: member) }) {
                if slots[index].retired { fresh.append(index) }
                slots[index] = UpstreamSlot(upstream, member: member)
                kept.insert(index)
            } else {
                guard slots.count < maxSlots else { throw TooManySlots(sinceStart: !previous.isEmpty) }
                slots.append(UpstreamSlot(upstream, member: member))
                kept.insert(slots.count - 1)
                fresh.append(slots.count - 1)
            }
        }
        var retired: [Int] = []
        for index in slots.indices where !kept.contains(index) && !slots[index].retired {
            slots[index].retired = true
            retired.append(index)
        }
        return Assignment(slots: slots, fresh: fresh, retired: retired)
    }

    /// The slots for each configured upstream's placed members (member number →
    /// address, ``UpstreamMembers/place(inForce:found:limit:)``) after `previous` slots
    /// at `addresses`, and each slot's address from now on: a live member's own, a
    /// retired slot's last. What start, a reload and `dns.refresh` all use.
    ///
    /// A member whose address changed keeps its slot (and its number, metrics series and
    /// pool). Whether it keeps its **health state** depends on what a member is: with
    /// `addresses: first` (1) the member is the name itself, which moved (a virtual IP
    /// renumbered, a DNS record repointed) — it keeps its state, as before members
    /// existed. With several, a member is one replica at one address (a pod of a
    /// headless Service): a new address in a kept number is another replica, taking the
    /// number the one that left freed, so it starts fresh as an added member does (up
    /// but unconfirmed, ``UpstreamHealth``) instead of inheriting the ejections and
    /// failing probes of the replica before it — Envoy keys a `STRICT_DNS` host's health
    /// by its address the same way (from Envoy's documentation; not run here).
    ///
    /// | `addresses` | member before       | member now | slot                 |
    /// |-------------|---------------------|------------|----------------------|
    /// | any         | 10.0.0.1            | 10.0.0.1   | kept                 |
    /// | `first` (1) | 10.0.0.1            | 10.0.0.2   | kept, moved          |
    /// | `all`, 2..  | 10.0.0.1            | 10.0.0.2   | fresh, moved         |
    /// | any         | retired (10.0.0.1)  | 10.0.0.1   | fresh (revived)      |
    /// | any         | —                   | 10.0.0.3   | fresh (a new slot)   |
    /// | any         | 10.0.0.1            | not placed | retired (keeps 10.0.0.1) |
    public static func assign<Address: Equatable>(
        previous: [UpstreamSlot], at addresses: [Address], placements: [(upstream: UpstreamConfig, members: [Int: Address])]
    ) throws(TooManySlots) -> (Assignment, [Address]) {
        precondition(previous.count == addresses.count, "one address per slot")
        var members: [(upstream: UpstreamConfig, member: Int)] = []
        var placed: [Address] = []
        for (upstream, found) in placements {
            for (member, address) in found.sorted(by: { $0.key < $1.key }) {
                members.append((upstream, member))
                placed.append(address)
            }
        }
        var assignment = try assign(previous: previous, members: members)
        var slotAddresses: [Address] = []
        slotAddresses.reserveCapacity(assignment.slots.count)
        for index in assignment.slots.indices {
            let slot = assignment.slots[index]
            guard !slot.retired, let at = members.firstIndex(where: { slot.serves($0.upstream, member: $0.member) }) else {
                slotAddresses.append(addresses[index])  // retired: only a slot that existed before is
                continue
            }
            slotAddresses.append(placed[at])
            let wasLive = index < previous.count && !previous[index].retired
            guard wasLive, addresses[index] != placed[at] else { continue }
            assignment.moved.append(index)
            if slot.maxAddresses > 1, !assignment.fresh.contains(index) { assignment.fresh.append(index) }
        }
        assignment.fresh.sort()
        return (assignment, slotAddresses)
    }
}
