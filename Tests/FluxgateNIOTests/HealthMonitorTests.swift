import FluxgateCore
import Logging
import Testing

@testable import FluxgateNIO

/// The health shell around the pure board: what it logs.
struct HealthMonitorTests {
    /// A query of death makes refused ejections by the dozen each second: the log gets
    /// one line per upstream until an ejected upstream returns; the counter gets each.
    @Test func aRefusedEjectionIsLoggedOnceUntilAnEjectedUpstreamReturns() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}, {url: \"http://127.0.0.1:10\"}, {url: \"http://127.0.0.1:11\"}]")
        config.healthCheck.enabled = false
        config.healthCheck.passive.consecutiveFailures = 1
        let slots = config.effectiveUpstreams.map { UpstreamSlot($0) }
        let capture = AdmissionGateTests.Capture()
        let gate = AdmissionGate(config: config, capacity: 300, now: .zero, logger: Logger(label: "test"))
        let monitor = HealthMonitor(
            names: slots.map(\.name), policy: config.healthCheck.policy, router: UpstreamRouter(upstreams: slots, gate: gate),
            logger: Logger(label: "test") { _ in capture })
        func at(_ seconds: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: seconds * 1_000_000_000) }
        func refusals() -> [String] { capture.lines.withLockedValue { $0 }.filter { $0.hasPrefix("upstream not ejected") } }

        monitor.exchangeFailed(0, .reset, now: at(0))  // ejected: the one place of three at 10 %
        for _ in 0..<5 { monitor.exchangeFailed(1, .reset, now: at(1)) }
        monitor.exchangeFailed(2, .status(502), now: at(1))
        #expect(refusals().count == 2, "\(refusals())")  // once for 1, once for 2
        #expect(monitor.state(1).ejectionsOverflowed == 5)
        monitor.tick(now: at(30))  // 0's cool-down is over: it returns…
        #expect(monitor.state(0).isReady)
        monitor.exchangeFailed(1, .reset, now: at(31))  // …so 1 takes the place
        #expect(monitor.state(1).isEjected)
        monitor.exchangeFailed(2, .reset, now: at(31))
        #expect(refusals().count == 3)  // logged again, now that the picture changed
    }
}
