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
    public var retired: Bool

    public init(_ upstream: UpstreamConfig, member: Int = 0, retired: Bool = false) {
        self.name = UpstreamMembers.name(upstream.name, member: member)
        self.group = upstream.name
        self.member = member
        self.url = upstream.url
        self.maxConcurrency = upstream.maxConcurrency
        self.weight = upstream.weight
        self.maxAddresses = upstream.maxAddresses
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
        /// Slots that start over (new, or revived after being retired).
        public var fresh: [Int]
        /// Slots retired by this assignment.
        public var retired: [Int]
    }

    public struct TooManySlots: Error, Equatable, CustomStringConvertible {
        public var description: String {
            "more than \(UpstreamSlots.maxSlots) distinct upstreams (name, url and address member) since start; restart to configure more"
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
                guard slots.count < maxSlots else { throw TooManySlots() }
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
}
