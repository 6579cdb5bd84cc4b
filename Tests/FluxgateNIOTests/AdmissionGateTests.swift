import FluxgateCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import FluxgateNIO

/// The gate's own bookkeeping, without sockets.
struct AdmissionGateTests {
    /// Collects log messages (swift-log's handler protocol).
    final class Capture: LogHandler, @unchecked Sendable {
        let lines = NIOLockedValueBox<[String]>([])
        /// Each event's `error` metadata, when it has one.
        let errors = NIOLockedValueBox<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            lines.withLockedValue { $0.append("\(event.message) \(event.metadata?["reason"].map { "\($0)" } ?? "")") }
            if let error = event.metadata?["error"] { errors.withLockedValue { $0.append("\(error)") } }
        }
    }

    /// An upstream's share of the slots (``ProxyHandler/withRoom(_:)``): its part of `S` by
    /// `max_concurrency`, divided among the loops; it follows `C` and, in cluster mode,
    /// this replica's share of `S`.
    @Test func anUpstreamsShareOfTheSlotsFollowsSAndTheClusterShare() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.rateLimit.global.enabled = false
        config.rateLimit.perClient.enabled = false
        let gate = AdmissionGate(config: config, capacity: 100, now: .zero, logger: Logger(label: "test"))
        #expect(gate.slotShare(maxConcurrency: 50, loops: 1) == 34)  // 67 × 50 / 100 = 33.5
        #expect(gate.slotShare(maxConcurrency: 50, loops: 2) == 17)
        gate.setCapacity(50, jitter: 0)  // the other upstream left: S = 33, all of it this one's
        #expect(gate.slotShare(maxConcurrency: 50, loops: 1) == 33)
        gate.setShare(LeasePlanner.Share(slots: 11, base: 33), jitter: 0)  // a third of S in a cluster of three
        #expect(gate.slotShare(maxConcurrency: 50, loops: 1) == 11)
        gate.setCapacity(0, jitter: 0)
        #expect(gate.slotShare(maxConcurrency: 50, loops: 1) == .max)
    }

    /// With no upstream ready, Retry-After says when one can be back at the earliest:
    /// `rise` probes at `interval` (3 × 4 s = 12 s here, plus up to 50 % jitter), not a constant.
    @Test func noHealthyUpstreamRetryAfterComesFromTheHealthSettings() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.rateLimit.global.enabled = false
        config.rateLimit.perClient.enabled = false
        config.healthCheck.interval = .seconds(4)
        config.healthCheck.rise = 3
        let gate = AdmissionGate(config: config, capacity: 0, now: .zero, logger: Logger(label: "test"))
        let loop = EmbeddedEventLoop()
        for (jitter, expected) in [(0.0, 12), (0.5, 18)] {
            let verdict = gate.admit(clientKey: "c", priority: .normal, now: .zero, jitter: jitter) { (loop, { _ in }) }
            guard case .rejected(let rejection) = verdict else {
                Issue.record("expected a rejection, got \(verdict)")
                return
            }
            #expect(rejection.reason == .noHealthyUpstream)
            #expect(rejection.retryAfterSeconds == expected)
        }
    }

    @Test func dryRunCountsEveryWouldBeShedAndLogsAtMostOncePerSecond() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.rateLimit.global.enabled = false
        config.rateLimit.perClient.enabled = true
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
        #expect(gate.dryRun.count(of: .clientRateLimited) == 3)
        #expect(gate.dryRun.total == 3)
        #expect(capture.lines.withLockedValue { $0 } == ["dry run: would have shed client_rate_limited", "dry run: would have shed client_rate_limited"])
        for _ in 0..<5 { gate.release(serviceTime: nil, now: .zero) }
        #expect(gate.snapshot.inFlight == 0)
    }

    /// C = 10, u = 0.5: S = 5, queue 5. Dropping C to 4 (S = 2, queue 2) keeps the two
    /// oldest waiters and sheds the three newest; raising it to 20 admits those two.
    @Test func capacityChangesResumeOrShedWaiters() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.rateLimit.global.enabled = false
        config.rateLimit.perClient.enabled = false
        config.admission.targetUtilization = 0.5
        config.admission.queueTimeout = .seconds(60)
        let gate = AdmissionGate(config: config, capacity: 10, now: .zero, logger: Logger(label: "test"))
        let loop = EmbeddedEventLoop()
        let outcomes = NIOLockedValueBox<[Int: String]>([:])
        for index in 0..<10 {
            let verdict = gate.admit(clientKey: "c", priority: .normal, now: .zero, jitter: 0) {
                (loop, { resumption in
                    let text: String
                    switch resumption {
                    case .admitted: text = "admitted"
                    case .rejected(let rejection): text = rejection.reason.rawValue
                    }
                    outcomes.withLockedValue { $0[index] = text }
                })
            }
            switch verdict {
            case .admitted: #expect(index < 5)
            case .queued: #expect(index >= 5)
            case .rejected: Issue.record("request \(index) rejected")
            }
        }
        gate.setCapacity(4, jitter: 0)
        loop.run()
        #expect(outcomes.withLockedValue { $0 } == [7: "overloaded", 8: "overloaded", 9: "overloaded"])
        #expect(gate.snapshot == .init(capacity: 4, slots: 2, fullSlots: 2, dueSlots: 2, queueLimit: 2, inFlight: 5, queued: 2, admitted: 5, utilization: 7.0 / 4.0))
        gate.setCapacity(20, jitter: 0)
        loop.run()
        #expect(outcomes.withLockedValue { $0[5] == "admitted" && $0[6] == "admitted" })
        #expect(gate.snapshot == .init(capacity: 20, slots: 10, fullSlots: 10, dueSlots: 10, queueLimit: 10, inFlight: 7, queued: 0, admitted: 7, utilization: 7.0 / 20.0))
        gate.setCapacity(0, jitter: 0)
        if case .rejected(let rejection) = gate.admit(clientKey: "c", priority: .normal, now: .zero, jitter: 0, waiter: { (loop, { _ in }) }) {
            #expect(rejection.reason == .noHealthyUpstream)
        } else {
            Issue.record("capacity 0 admitted a request")
        }
    }
}

/// The gate hands the release time to the standing-queue rule, and its snapshot (for
/// `/stats` and metrics) reports the rule.
struct AdmissionGateStandingQueueTests {
    @Test func releasesTimeTheWaitsAndTheSnapshotShowsAStandingQueue() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.rateLimit.global.enabled = false
        config.rateLimit.perClient.enabled = false
        config.admission.targetUtilization = 0.5  // C = 4: S = 2, queue 2
        func at(_ ms: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: ms * 1_000_000) }
        let gate = AdmissionGate(config: config, capacity: 4, now: .zero, logger: Logger(label: "test"))
        let loop = EmbeddedEventLoop()
        var refused: [Int64] = []
        func arrive(_ ms: Int64) {
            let verdict = gate.admit(clientKey: "c", priority: .normal, now: at(ms), jitter: 0) { (loop, { _ in }) }
            if case .rejected = verdict { refused.append(ms) }
        }
        for _ in 0..<4 { arrive(0) }  // two run, two wait
        // Every 10 ms a slot frees and the oldest waiter, which waited ≥ 10 ms, runs.
        for t in stride(from: Int64(10), through: 90, by: 10) {
            gate.release(serviceTime: .milliseconds(20), now: at(t))
            arrive(t)
        }
        #expect(refused.isEmpty)
        #expect(!gate.snapshot(at: at(95)).standing)  // waits above the target for 80 ms only
        gate.release(serviceTime: .milliseconds(20), now: at(110))  // 100 ms: standing
        #expect(gate.snapshot(at: at(110)).standing)
        arrive(110)  // predicted wait 2 × 10 ms > 5 ms: refused at once
        #expect(refused == [110])
        #expect(gate.snapshot(at: at(209)).standing)
        #expect(!gate.snapshot(at: at(210)).standing)  // an interval without a refusal
    }
}
