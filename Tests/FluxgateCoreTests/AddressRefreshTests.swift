import Testing

@testable import FluxgateCore

/// `dns.refresh`'s decisions, round by round, with strings for addresses.
struct AddressRefreshTests {
    @Test func movesAreReportedAndFailuresOnceUntilTheNameResolvesAgain() {
        var refresh = AddressRefresh<String>()
        var inForce = [0: "10.0.0.1", 1: "10.0.0.2"]
        func round(_ lookups: [(slot: Int, found: [String]?)]) -> [AddressRefresh<String>.Event] {
            let events = refresh.round(lookups) { inForce[$0]! }
            for case .moved(let slot, let address) in events { inForce[slot] = address }
            return events
        }
        #expect(round([(0, ["10.0.0.1"]), (1, ["10.0.0.2"])]).isEmpty)
        #expect(round([(0, ["10.0.0.9"]), (1, ["10.0.0.2"])]) == [.moved(slot: 0, to: "10.0.0.9")])
        #expect(round([(0, ["10.0.0.9"]), (1, nil)]) == [.stoppedResolving(slot: 1)])
        #expect(round([(0, ["10.0.0.9"]), (1, nil)]).isEmpty)  // reported once
        #expect(inForce[1] == "10.0.0.2")  // a failed lookup keeps the address
        #expect(round([(1, ["10.0.0.2"])]) == [.resolvesAgain(slot: 1)])
        #expect(round([(1, [])]) == [.stoppedResolving(slot: 1)])  // no usable address: failing again is news again
        #expect(round([(1, ["10.0.0.7"])]) == [.resolvesAgain(slot: 1), .moved(slot: 1, to: "10.0.0.7")])
        #expect(inForce == [0: "10.0.0.9", 1: "10.0.0.7"])
    }

    /// A name whose records a DNS server rotates keeps the address in force while it is
    /// listed; when it is no longer listed the best address found is taken.
    @Test func anAddressStillListedStays() {
        var refresh = AddressRefresh<String>()
        var inForce = "10.0.0.1"
        func round(_ found: [String]) -> [AddressRefresh<String>.Event] {
            let events = refresh.round([(0, found)]) { _ in inForce }
            for case .moved(_, let address) in events { inForce = address }
            return events
        }
        #expect(round(["10.0.0.2", "10.0.0.1"]).isEmpty)
        #expect(round(["10.0.0.1", "10.0.0.2"]).isEmpty)
        #expect(round(["10.0.0.3", "10.0.0.2"]) == [.moved(slot: 0, to: "10.0.0.3")])
        #expect(round(["10.0.0.2", "10.0.0.3"]).isEmpty)
        #expect(inForce == "10.0.0.3")
    }
}

/// `dns.family`: which of a name's addresses are usable, best first — the table in
/// ``AddressFamilyPreference``'s comment, row by row.
struct AddressFamilyPreferenceTests {
    typealias Found = [(family: AddressFamilyPreference.Family, address: String)]
    let localhost: Found = [(.v6, "::1"), (.v4, "127.0.0.1")]
    let twoV4: Found = [(.v4, "10.0.0.2"), (.v4, "10.0.0.1")]
    let oneV6: Found = [(.v6, "fd00::5")]

    @Test func eachPreferenceOrdersAndFilters() {
        #expect(AddressFamilyPreference.v4Preferred.candidates(localhost) == ["127.0.0.1"])  // IPv6 only as the fallback
        #expect(AddressFamilyPreference.auto.candidates(localhost) == ["::1", "127.0.0.1"])
        #expect(AddressFamilyPreference.v4Only.candidates(localhost) == ["127.0.0.1"])
        #expect(AddressFamilyPreference.v6Only.candidates(localhost) == ["::1"])
        for preference in [AddressFamilyPreference.v4Preferred, .auto, .v4Only] {
            #expect(preference.candidates(twoV4) == ["10.0.0.2", "10.0.0.1"])  // the resolver's order kept
        }
        #expect(AddressFamilyPreference.v6Only.candidates(twoV4).isEmpty)
        #expect(AddressFamilyPreference.v4Only.candidates(oneV6).isEmpty)
        for preference in [AddressFamilyPreference.v4Preferred, .auto, .v6Only] {
            #expect(preference.candidates(oneV6) == ["fd00::5"])
        }
    }

    /// A name that had only an IPv6 address and gains an IPv4 one: with `v4_preferred`
    /// the refresh moves the upstream to IPv4 (the IPv6 address, though still listed,
    /// is no longer a candidate); with `auto` it stays while listed.
    @Test func v4PreferredLeavesIPv6OnceTheNameHasIPv4() {
        let before: Found = [(.v6, "fd00::5")]
        let after: Found = [(.v6, "fd00::5"), (.v4, "10.0.0.5")]
        for (preference, expected) in [(AddressFamilyPreference.v4Preferred, "10.0.0.5"), (.auto, "fd00::5")] {
            var refresh = AddressRefresh<String>()
            var inForce = preference.candidates(before)[0]
            for found in [before, after, after] {
                for case .moved(_, let address) in refresh.round([(0, preference.candidates(found))], inForce: { _ in inForce }) {
                    inForce = address
                }
            }
            #expect(inForce == expected, "\(preference)")
        }
    }

    @Test func anAddressListedTwiceComesOnce() {
        let twice: Found = [(.v4, "10.0.0.1"), (.v6, "::1"), (.v4, "10.0.0.1")]
        #expect(AddressFamilyPreference.v4Preferred.candidates(twice) == ["10.0.0.1"])
        #expect(AddressFamilyPreference.auto.candidates(twice) == ["10.0.0.1", "::1"])
    }
}
