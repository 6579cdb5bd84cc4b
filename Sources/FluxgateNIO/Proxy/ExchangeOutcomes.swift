import FluxgateCore

/// Exchanges by how they ended, read off the per-loop metrics (``TrafficStats``),
/// where each exchange's single end (``ExchangeLifecycle``) counts it once. Tests read
/// them to check that no path ends an exchange twice or never.
enum ExchangeOutcomes {
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
}

extension TrafficStats {
    var outcomes: ExchangeOutcomes.Counts {
        ExchangeOutcomes.Counts(
            proxied: endCounts[0], shed: endCounts[1], gatewayAnswers: endCounts[2], cutOff: endCounts[3],
            clientGone: endCounts[4], retries: retries)
    }
}
