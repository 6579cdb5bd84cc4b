/// `dns.refresh`'s decisions, apart from the lookups themselves: given what each named
/// upstream's lookup found and its members in force, which members to publish and what
/// to log. A lookup gives the name's usable addresses, best first
/// (``AddressFamilyPreference/candidates(_:)``), and ``UpstreamMembers/place(inForce:found:limit:)``
/// decides the members — an address in force stays while listed, so a DNS server that
/// rotates a name's records (round-robin DNS) moves nothing and closes no idle
/// connection at a refresh. A failed lookup (or one with no usable address) keeps the
/// members in force and is reported once, until the name resolves again. Generic over
/// the upstream's key and the address, so it knows no sockets.
///
/// | lookup (in force: 0: A; limit 1) | events                          |
/// |----------------------------------|---------------------------------|
/// | A                                | none                            |
/// | B, A (rotated)                   | none                            |
/// | B                                | `placed(0: B)`                  |
/// | B, C                             | `placed(0: B)`                  |
/// | fails or none usable (first time)| `stoppedResolving`              |
/// | fails again                      | none                            |
/// | B, after failing                 | `resolvesAgain`, `placed(0: B)` |
public struct AddressRefresh<Key: Hashable & Sendable, Address: Equatable & Sendable>: Sendable {
    public enum Event: Equatable, Sendable {
        /// The upstream's members change: publish `members` (member number → address),
        /// which replace those in force.
        case placed(Key, members: [Int: Address])
        /// The lookup failed, for the first time since it last worked: keep the members.
        case stoppedResolving(Key)
        /// The lookup works again after failing.
        case resolvesAgain(Key)
        /// The name lists more usable addresses than its `addresses` allows (`listed`):
        /// reported once, until it lists no more than that again. Not for `addresses:
        /// first` (or 1), which asks for one address of many.
        case listsMoreThanAllowed(Key, listed: Int)
    }

    /// One upstream's lookup: `found` is the usable addresses, best first, nil or empty
    /// where the lookup failed; `inForce` its members now; `limit` its `addresses`.
    public struct Lookup: Sendable {
        public var key: Key
        public var found: [Address]?
        public var inForce: [Int: Address]
        public var limit: Int

        public init(key: Key, found: [Address]?, inForce: [Int: Address], limit: Int) {
            self.key = key
            self.found = found
            self.inForce = inForce
            self.limit = limit
        }
    }

    /// Upstreams whose last lookup failed.
    private var failing: Set<Key> = []
    /// Upstreams whose last lookup listed more addresses than they take.
    private var overLimit: Set<Key> = []

    public init() {}

    /// `keys` listed more addresses than they take in a lookup made elsewhere (start or
    /// a reload), which warned about it: a round reports them again only after they
    /// list no more than allowed in between.
    public mutating func warnedListsMoreThanAllowed(_ keys: some Sequence<Key>) {
        overLimit.formUnion(keys)
    }

    /// One round of lookups.
    public mutating func round(_ lookups: [Lookup]) -> [Event] {
        var events: [Event] = []
        for lookup in lookups {
            guard let found = lookup.found, !found.isEmpty else {
                if failing.insert(lookup.key).inserted { events.append(.stoppedResolving(lookup.key)) }
                continue
            }
            if failing.remove(lookup.key) != nil { events.append(.resolvesAgain(lookup.key)) }
            if lookup.limit > 1, found.count > lookup.limit {
                if overLimit.insert(lookup.key).inserted { events.append(.listsMoreThanAllowed(lookup.key, listed: found.count)) }
            } else {
                overLimit.remove(lookup.key)
            }
            let members = UpstreamMembers.place(inForce: lookup.inForce, found: found, limit: lookup.limit)
            if members != lookup.inForce { events.append(.placed(lookup.key, members: members)) }
        }
        return events
    }
}
