/// `dns.refresh`'s decisions, apart from the lookups themselves: given what each named
/// upstream's lookup found and the address in force, which addresses to publish and
/// what to log. A lookup gives the name's usable addresses, best first
/// (``AddressFamilyPreference/candidates(_:)``); the address in force stays while it is
/// among them, so a DNS server that rotates a name's records (round-robin DNS) does not
/// move the upstream — and close its idle connections — at every refresh. A failed
/// lookup (or one with no usable address) keeps the address in force and is reported
/// once, until the name resolves again. Generic over the address, so it knows no
/// sockets.
///
/// | lookup (in force: A)      | events                          |
/// |---------------------------|---------------------------------|
/// | A                         | none                            |
/// | B, A (rotated)            | none                            |
/// | B                         | `moved(to: B)`                  |
/// | B, C                      | `moved(to: B)`                  |
/// | fails or none usable (first time) | `stoppedResolving`      |
/// | fails again               | none                            |
/// | B, after failing          | `resolvesAgain`, `moved(to: B)` |
public struct AddressRefresh<Address: Equatable & Sendable>: Sendable {
    public enum Event: Equatable, Sendable {
        /// The name points elsewhere now: publish `to` for the slot.
        case moved(slot: Int, to: Address)
        /// The lookup failed, for the first time since it last worked: keep the address.
        case stoppedResolving(slot: Int)
        /// The lookup works again after failing.
        case resolvesAgain(slot: Int)
    }

    /// Slots whose last lookup failed.
    private var failing: Set<Int> = []

    public init() {}

    /// One round of lookups: `found` is the usable addresses, best first, nil or empty
    /// where the lookup failed; `inForce` gives the address each slot has now.
    public mutating func round(_ lookups: [(slot: Int, found: [Address]?)], inForce: (Int) -> Address) -> [Event] {
        var events: [Event] = []
        for (slot, found) in lookups {
            guard let found, let best = found.first else {
                if failing.insert(slot).inserted { events.append(.stoppedResolving(slot: slot)) }
                continue
            }
            if failing.remove(slot) != nil { events.append(.resolvesAgain(slot: slot)) }
            if !found.contains(inForce(slot)) { events.append(.moved(slot: slot, to: best)) }
        }
        return events
    }
}
