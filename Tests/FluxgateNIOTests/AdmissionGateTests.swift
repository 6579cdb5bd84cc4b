import FluxgateCore
import Logging
import NIOConcurrencyHelpers
import NIOEmbedded
import Testing

@testable import FluxgateNIO

/// The gate's own bookkeeping, without sockets.
struct AdmissionGateTests {
    /// Collects log messages (swift-log's handler protocol).
    final class Capture: LogHandler, @unchecked Sendable {
        let lines = NIOLockedValueBox<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            lines.withLockedValue { $0.append("\(event.message) \(event.metadata?["reason"].map { "\($0)" } ?? "")") }
        }
    }

    @Test func dryRunCountsEveryWouldBeShedAndLogsAtMostOncePerSecond() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.rateLimit.global.enabled = false
        config.rateLimit.perClient.rate = 1
        config.rateLimit.perClient.burst = 1
        config.rateLimit.perClient.dryRun = true
        let capture = Capture()
        let gate = AdmissionGate(config: config, capacity: 100, now: .zero, logger: Logger(label: "test") { _ in capture })
        let loop = EmbeddedEventLoop()
        func admit(_ ms: Int64) -> Bool {
            let verdict = gate.admit(clientKey: "c", priority: .normal, now: MonotonicTime(nanoseconds: ms * 1_000_000), jitter: 0) {
                (loop, { _ in })
            }
            if case .admitted = verdict { return true }
            return false
        }
        #expect(admit(0))  // the bucket's one token
        #expect(admit(1))  // would be shed: logged
        #expect(admit(2))  // would be shed: counted, not logged (same second)
        #expect(admit(1_002))  // a token refilled meanwhile: no shed
        #expect(admit(1_003))  // would be shed, a second after the last line: logged again
        #expect(gate.counters.wouldShedCount(.clientRateLimited) == 3)
        #expect(gate.counters.shedCount(.clientRateLimited) == 0)
        #expect(capture.lines.withLockedValue { $0 } == ["dry run: would have shed client_rate_limited", "dry run: would have shed client_rate_limited"])
        for _ in 0..<5 { gate.release(serviceTime: nil) }
        #expect(gate.snapshot.inFlight == 0)
    }
}
