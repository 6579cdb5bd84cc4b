import FluxgateCore
import Synchronization

/// Exchanges by how they ended, counted at their single end (``ExchangeLifecycle``),
/// so every request is counted exactly once. The metrics endpoint will export these;
/// tests read them to check that no path ends an exchange twice or never.
final class ExchangeOutcomes: Sendable {
    struct Counts: Sendable, Equatable {
        var proxied = 0
        var shed = 0
        var gatewayAnswers = 0
        var cutOff = 0
        var clientGone = 0
        /// Attempts after the first, over all exchanges.
        var retries = 0

        var total: Int { proxied + shed + gatewayAnswers + cutOff + clientGone }
    }

    private let proxied = Atomic<Int>(0)
    private let shed = Atomic<Int>(0)
    private let gatewayAnswers = Atomic<Int>(0)
    private let cutOff = Atomic<Int>(0)
    private let clientGone = Atomic<Int>(0)
    private let retries = Atomic<Int>(0)

    func record(_ outcome: ExchangeLifecycle.Outcome) {
        switch outcome.end {
        case .proxied: proxied.wrappingAdd(1, ordering: .relaxed)
        case .shed: shed.wrappingAdd(1, ordering: .relaxed)
        case .gatewayAnswer: gatewayAnswers.wrappingAdd(1, ordering: .relaxed)
        case .cutOff: cutOff.wrappingAdd(1, ordering: .relaxed)
        case .clientGone: clientGone.wrappingAdd(1, ordering: .relaxed)
        }
        if outcome.retries > 0 { retries.wrappingAdd(outcome.retries, ordering: .relaxed) }
    }

    var counts: Counts {
        Counts(
            proxied: proxied.load(ordering: .relaxed), shed: shed.load(ordering: .relaxed),
            gatewayAnswers: gatewayAnswers.load(ordering: .relaxed), cutOff: cutOff.load(ordering: .relaxed),
            clientGone: clientGone.load(ordering: .relaxed), retries: retries.load(ordering: .relaxed))
    }
}
