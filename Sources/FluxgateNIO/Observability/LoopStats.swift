import FluxgateCore
import Histogram
import NIOCore

/// One event loop's record of the exchanges it ended: the counters and histograms the
/// metrics endpoint exports (``TrafficStats``) and a recent-latency HdrHistogram for
/// `/stats` percentiles.
///
/// Owned by its loop and written only there, so recording costs no lock and no atomic;
/// readers (``GatewayObservability``) take a copy on the loop. The HdrHistogram keeps
/// two windows of ``window`` each: `/stats` reports the current one merged with the
/// previous, so its percentiles describe the last 10-20 s, not the whole uptime.
final class LoopStats {
    static let window: TimeAmount = .seconds(10)
    /// Microseconds, 1 µs … 60 s, two significant digits (about 1 % error, ~12 KiB).
    static func makeLatency() -> Histogram<UInt32> {
        Histogram(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .two)
    }

    var traffic = TrafficStats()
    /// The admission slots this loop's requests hold, per upstream: given back when an
    /// upstream leaves rotation (``GatewayServer`` asks each loop's).
    var slotHolders = UpstreamSlotHolders()
    private(set) var current = LoopStats.makeLatency()
    private(set) var previous = LoopStats.makeLatency()

    init() {}

    func record(_ outcome: ExchangeLifecycle.Outcome, route: Priority, countedUpstream: Int?) {
        traffic.record(outcome, route: route)
        traffic.moved(from: countedUpstream, to: nil)
        let micros = UInt64(clamping: max(1, outcome.total.nanosecondsClamped / 1000))
        _ = current.record(min(micros, current.highestTrackableValue))
    }

    /// Starts a new latency window (every ``window``, on this loop).
    func rotate() {
        swap(&current, &previous)
        current.reset()
    }

    /// The last one to two windows together.
    var recentLatency: Histogram<UInt32> {
        var merged = previous
        merged.add(current)
        return merged
    }
}
