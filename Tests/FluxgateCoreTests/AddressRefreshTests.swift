import Testing

@testable import FluxgateCore

/// `dns.refresh`'s decisions, round by round, with strings for addresses.
struct AddressRefreshTests {
    @Test func movesAreReportedAndFailuresOnceUntilTheNameResolvesAgain() {
        var refresh = AddressRefresh<String>()
        var inForce = [0: "10.0.0.1", 1: "10.0.0.2"]
        func round(_ lookups: [(slot: Int, found: String?)]) -> [AddressRefresh<String>.Event] {
            let events = refresh.round(lookups) { inForce[$0]! }
            for case .moved(let slot, let address) in events { inForce[slot] = address }
            return events
        }
        #expect(round([(0, "10.0.0.1"), (1, "10.0.0.2")]).isEmpty)
        #expect(round([(0, "10.0.0.9"), (1, "10.0.0.2")]) == [.moved(slot: 0, to: "10.0.0.9")])
        #expect(round([(0, "10.0.0.9"), (1, nil)]) == [.stoppedResolving(slot: 1)])
        #expect(round([(0, "10.0.0.9"), (1, nil)]).isEmpty)  // reported once
        #expect(inForce[1] == "10.0.0.2")  // a failed lookup keeps the address
        #expect(round([(1, "10.0.0.2")]) == [.resolvesAgain(slot: 1)])
        #expect(round([(1, nil)]) == [.stoppedResolving(slot: 1)])  // failing again is news again
        #expect(round([(1, "10.0.0.7")]) == [.resolvesAgain(slot: 1), .moved(slot: 1, to: "10.0.0.7")])
        #expect(inForce == [0: "10.0.0.9", 1: "10.0.0.7"])
    }
}
