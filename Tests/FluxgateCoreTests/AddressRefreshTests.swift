import Testing

@testable import FluxgateCore

/// `dns.refresh`'s decisions, round by round, with strings for addresses.
struct AddressRefreshTests {
    typealias Refresh = AddressRefresh<String, String>

    /// One member per name (`addresses: first`), the table in ``AddressRefresh``'s comment.
    @Test func movesAreReportedAndFailuresOnceUntilTheNameResolvesAgain() {
        var refresh = Refresh()
        var inForce = ["a": [0: "10.0.0.1"], "b": [0: "10.0.0.2"]]
        func round(_ lookups: [(key: String, found: [String]?)]) -> [Refresh.Event] {
            let events = refresh.round(lookups.map { .init(key: $0.key, found: $0.found, inForce: inForce[$0.key]!, limit: 1) })
            for case .placed(let key, let members) in events { inForce[key] = members }
            return events
        }
        #expect(round([("a", ["10.0.0.1"]), ("b", ["10.0.0.2"])]).isEmpty)
        #expect(round([("a", ["10.0.0.9"]), ("b", ["10.0.0.2"])]) == [.placed("a", members: [0: "10.0.0.9"])])
        #expect(round([("a", ["10.0.0.9"]), ("b", nil)]) == [.stoppedResolving("b")])
        #expect(round([("a", ["10.0.0.9"]), ("b", nil)]).isEmpty)  // reported once
        #expect(inForce["b"] == [0: "10.0.0.2"])  // a failed lookup keeps the address
        #expect(round([("b", ["10.0.0.2"])]) == [.resolvesAgain("b")])
        #expect(round([("b", [])]) == [.stoppedResolving("b")])  // no usable address: failing again is news again
        #expect(round([("b", ["10.0.0.7", "10.0.0.8"])]) == [.resolvesAgain("b"), .placed("b", members: [0: "10.0.0.7"])])
        #expect(inForce == ["a": [0: "10.0.0.9"], "b": [0: "10.0.0.7"]])
    }

    /// A name whose records a DNS server rotates keeps the address in force while it is
    /// listed; when it is no longer listed the best address found is taken.
    @Test func anAddressStillListedStays() {
        var refresh = Refresh()
        var inForce = [0: "10.0.0.1"]
        func round(_ found: [String]) -> [Refresh.Event] {
            let events = refresh.round([.init(key: "a", found: found, inForce: inForce, limit: 1)])
            for case .placed(_, let members) in events { inForce = members }
            return events
        }
        #expect(round(["10.0.0.2", "10.0.0.1"]).isEmpty)
        #expect(round(["10.0.0.1", "10.0.0.2"]).isEmpty)
        #expect(round(["10.0.0.3", "10.0.0.2"]) == [.placed("a", members: [0: "10.0.0.3"])])
        #expect(round(["10.0.0.2", "10.0.0.3"]).isEmpty)
        #expect(inForce == [0: "10.0.0.3"])
    }

    /// `addresses: all`: a headless Service's pods come and go; rotated records move
    /// nothing, a lost address's member is dropped, a new address takes the lowest free
    /// number, and a failed lookup keeps every member.
    @Test func aNameWithSeveralAddressesHasAMemberEach() {
        var refresh = Refresh()
        var inForce: [Int: String] = [0: "A"]
        func round(_ found: [String]?) -> [Refresh.Event] {
            let events = refresh.round([.init(key: "app", found: found, inForce: inForce, limit: 3)])
            for case .placed(_, let members) in events { inForce = members }
            return events
        }
        #expect(round(["A", "B", "C"]) == [.placed("app", members: [0: "A", 1: "B", 2: "C"])])
        #expect(round(["C", "B", "A"]).isEmpty)
        #expect(round(["C", "A"]) == [.placed("app", members: [0: "A", 2: "C"])])
        #expect(round(nil) == [.stoppedResolving("app")])
        #expect(inForce == [0: "A", 2: "C"])
        #expect(
            round(["D", "E", "A", "C"]) == [
                .resolvesAgain("app"), .listsMoreThanAllowed("app", listed: 4), .placed("app", members: [0: "A", 1: "D", 2: "C"]),
            ])  // E: over the limit
        #expect(round(["D", "E", "A", "C"]).isEmpty)  // reported once
        #expect(round(["D", "A", "C"]).isEmpty)
        #expect(round(["D", "E", "A", "C"]) == [.listsMoreThanAllowed("app", listed: 4)])  // news again after fitting
    }

    /// Start and reload warn of a name over its limit themselves; the refresh's rounds
    /// then stay quiet about it until the name has fitted in between.
    @Test func aWarningGivenAtStartIsNotRepeated() {
        var refresh = Refresh()
        refresh.warnedListsMoreThanAllowed(["app"])
        let full: [Int: String] = [0: "A", 1: "B"]
        #expect(refresh.round([.init(key: "app", found: ["A", "B", "C"], inForce: full, limit: 2)]).isEmpty)
        #expect(refresh.round([.init(key: "app", found: ["A", "B"], inForce: full, limit: 2)]).isEmpty)
        #expect(refresh.round([.init(key: "app", found: ["A", "B", "C"], inForce: full, limit: 2)]) == [.listsMoreThanAllowed("app", listed: 3)])
    }
}

/// Which address each member of an upstream serves: the table in
/// ``UpstreamMembers/place(inForce:found:limit:)``'s comment, row by row, then random
/// rounds against the rules themselves.
struct UpstreamMembersTests {
    @Test func theTableRowByRow() {
        let place: ([Int: String], [String], Int) -> [Int: String] = UpstreamMembers.place(inForce:found:limit:)
        #expect(place([:], ["A", "B", "C"], 32) == [0: "A", 1: "B", 2: "C"])
        #expect(place([0: "A", 1: "B", 2: "C"], ["C", "A", "B"], 32) == [0: "A", 1: "B", 2: "C"])
        #expect(place([0: "A", 1: "B", 2: "C"], ["A", "C"], 32) == [0: "A", 2: "C"])
        #expect(place([0: "A", 2: "C"], ["D", "A", "C"], 32) == [0: "A", 1: "D", 2: "C"])
        #expect(place([0: "A"], ["B", "C"], 1) == [0: "B"])
        #expect(place([0: "A", 1: "B"], ["A", "B"], 1) == [0: "A"])
        #expect(place([1: "B"], ["B", "A"], 1) == [0: "B"])  // limit lowered below the member kept: the best listed
    }

    @Test func namesNumberMembersFromTwo() {
        #expect(UpstreamMembers.name("app", member: 0) == "app")
        #expect(UpstreamMembers.name("app", member: 1) == "app#2")
        #expect(UpstreamMembers.name("app", member: 9) == "app#10")
    }

    /// Random lookups: every address listed and in force stays with its member; the
    /// result has min(limit, listed) members, all listed, none twice, numbered below
    /// the limit; a member number is taken only when every lower one is served.
    @Test func randomRoundsKeepTheRules() {
        var random = SystemRandomNumberGenerator()
        let pool = (0..<12).map { "10.0.0.\($0)" }
        for _ in 0..<2000 {
            let limit = Int.random(in: 1...6, using: &random)
            var inForce: [Int: String] = [:]
            for member in 0..<limit where Bool.random(using: &random) { inForce[member] = pool.randomElement(using: &random)! }
            if Set(inForce.values).count != inForce.count { continue }
            let found = Array(pool.shuffled(using: &random).prefix(Int.random(in: 1...8, using: &random)))
            let placed = UpstreamMembers.place(inForce: inForce, found: found, limit: limit)
            #expect(placed.count == min(limit, found.count))
            #expect(Set(placed.values).count == placed.count)
            #expect(placed.values.allSatisfy(found.contains))
            #expect(placed.keys.allSatisfy { $0 < limit })
            for (member, address) in inForce where found.contains(address) { #expect(placed[member] == address) }
            let new = placed.filter { inForce[$0.key] != $0.value }.keys
            for member in new { #expect((0..<member).allSatisfy { placed[$0] != nil }) }
        }
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
            var refresh = AddressRefresh<String, String>()
            var inForce = preference.candidates(before)[0]
            for found in [before, after, after] {
                let lookup = AddressRefresh<String, String>.Lookup(key: "a", found: preference.candidates(found), inForce: [0: inForce], limit: 1)
                for case .placed(_, let members) in refresh.round([lookup]) { inForce = members[0]! }
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
