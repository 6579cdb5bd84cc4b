/// What one upstream's health is, from three sources kept apart (the model is pingora's
/// `health_check.rs`: the operator's switch is not an observation):
///
/// - **enabled**: the operator's switch. A disabled upstream takes no traffic whatever
///   the checks say.
/// - **probe state**: active checks. `fall` consecutive failed probes take it down,
///   `rise` consecutive successes bring it up (HAProxy's `rise`/`fall`).
/// - **ejection**: passive checks. `consecutiveFailures` failed exchanges in a row
///   (connect failure, reset before the answer, 5xx) eject it for a cool-down that grows
///   with each ejection — `baseEjection × n`, at most `maxEjection` (Envoy's outlier
///   detection). When active checks run, an ejected upstream also needs `rise` good
///   probes before it returns; and once a probe fails during the ejection, the probes
///   alone decide (a killed replica that is restarted is back after `rise` probes, not
///   at the end of the cool-down). An upstream whose probes keep passing while its
///   traffic fails sits out the cool-down, which grows with each ejection.
///
/// Start-up: an upstream starts **up but unconfirmed**: it takes traffic at once (no
/// burst of 503s while `rise` probes accumulate) and a single failed probe takes it
/// down (no burst of errors from an upstream that was never there). The gateway probes
/// every upstream once before it opens its listener, so a dead one is out before the
/// first request.
///
/// | event (rise 2, fall 3)                     | ready after |
/// |--------------------------------------------|-------------|
/// | start                                      | yes (unconfirmed) |
/// | first probe fails                          | no          |
/// | two probes succeed                         | yes         |
/// | three probes fail                          | no          |
/// | 5 failed exchanges (first ejection, 30 s)  | no, until 30 s passed and 2 probes succeeded |
/// | …then a probe fails (the probes see it too) | no, until 2 probes succeed (cool-down dropped) |
/// | second ejection, probes passing            | no, for 60 s |
///
/// Pure: every event takes `now`; nothing here reads a clock.
public struct UpstreamHealth: Sendable, Equatable {
    /// Why a probe or an exchange counted as a failure.
    public enum Failure: Sendable, Equatable, CustomStringConvertible {
        case status(Int)
        case timeout
        case refused
        case reset
        case malformed
        case other(String)

        /// What an exchange's failure is counted as, per upstream
        /// (`fluxgate_upstream_failures_total{kind}`).
        public var kind: Kind {
            switch self {
            case .status: .status5xx
            case .timeout: .timeout
            case .refused, .other: .connect
            case .reset: .reset
            case .malformed: .malformed
            }
        }

        public enum Kind: String, Sendable, CaseIterable {
            /// The connect failed (refused, unreachable, ...).
            case connect
            /// A connect, response-head, read or send timeout.
            case timeout
            /// The connection closed or reset before the response was complete.
            case reset
            /// A 5xx answer.
            case status5xx = "5xx"
            /// A response that is not HTTP/1.x.
            case malformed
        }

        public var description: String {
            switch self {
            case .status(let code): "status \(code)"
            case .timeout: "timeout"
            case .refused: "connection refused"
            case .reset: "connection reset"
            case .malformed: "malformed response"
            case .other(let text): text
            }
        }
    }

    /// Why readiness changed, for the flip's log line and counter.
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        case probeFailed(Failure)
        case probesPassed(Int)
        case ejected(Failure, consecutive: Int, coolDown: Duration)
        case ejectionEnded
        case disabled
        case enabled

        public var description: String {
            switch self {
            case .probeFailed(let failure): "health check failed: \(failure)"
            case .probesPassed(let count): "\(count) health checks passed"
            case .ejected(let failure, let count, let coolDown):
                "ejected after \(count) failed requests in a row (last: \(failure)) for \(DurationParser.format(coolDown))"
            case .ejectionEnded: "ejection cool-down over"
            case .disabled: "disabled by the operator"
            case .enabled: "enabled by the operator"
            }
        }

        /// A short label for metrics.
        public var label: String {
            switch self {
            case .probeFailed: "probe_failed"
            case .probesPassed: "probes_passed"
            case .ejected: "ejected"
            case .ejectionEnded: "ejection_ended"
            case .disabled: "disabled"
            case .enabled: "enabled"
            }
        }
    }

    /// A change of readiness.
    public struct Flip: Sendable, Equatable {
        public var ready: Bool
        public var reason: Reason

        public init(ready: Bool, reason: Reason) {
            self.ready = ready
            self.reason = reason
        }
    }

    public private(set) var enabled = true
    /// Active checks' view; `true` at start (unconfirmed until the first probe).
    public private(set) var probeUp = true
    /// No probe has answered yet: the first failure takes the upstream down.
    public private(set) var unconfirmed = true
    public private(set) var probeSuccesses = 0
    public private(set) var probeFailures = 0
    /// Failed exchanges in a row (passive).
    public private(set) var consecutiveFailures = 0
    /// Passively ejected until then.
    public private(set) var ejectedUntil: MonotonicTime?
    /// After an ejection, with active checks on: still waiting for `rise` good probes.
    public private(set) var awaitingProbes = false
    /// Ejections so far (the cool-down multiplier); forgotten after `maxEjection` healthy.
    public private(set) var ejections = 0
    /// Every ejection since start-up (or since the slot was made afresh), never forgotten:
    /// the `fluxgate_upstream_ejections_total` counter.
    public private(set) var ejectionsTotal = 0
    /// Ejections the board refused because `max_ejection_percent` of the upstreams were
    /// already out (Envoy's `ejections_overflow`): one per failure that would have ejected.
    public private(set) var ejectionsOverflowed = 0
    /// Every failure of the running streak was a refused connect: nothing a request can
    /// cause (no byte of it was sent), so the `max_ejection_percent` cap does not hold it.
    public private(set) var streakRefusedOnly = false
    /// When the upstream last became ready after having been out (slow start); nil when
    /// it has been ready since start-up.
    public private(set) var readySince: MonotonicTime?
    private var policy: HealthPolicy

    public init(policy: HealthPolicy) {
        self.policy = policy
    }

    /// A reload changed the health settings: thresholds apply from the next event on,
    /// the state so far (up or down, streaks, ejection) is kept.
    public mutating func updatePolicy(_ policy: HealthPolicy) {
        self.policy = policy
    }

    /// Takes traffic now.
    public var isReady: Bool { enabled && probeUp && ejectedUntil == nil && !awaitingProbes }
    /// Would take traffic if passive ejection were ignored (the panic rule's notion of
    /// "there": the probes and the operator say yes).
    public var isCandidate: Bool { enabled && probeUp }
    public var isEjected: Bool { ejectedUntil != nil || awaitingProbes }

    // MARK: Events

    public mutating func probeSucceeded(now: MonotonicTime) -> Flip? {
        change(now: now, reason: .probesPassed(policy.rise)) { state in
            state.unconfirmed = false
            state.probeFailures = 0
            state.probeSuccesses += 1
            if state.probeSuccesses >= state.policy.rise {
                state.probeUp = true
                if state.ejectedUntil == nil { state.awaitingProbes = false }
            }
        }
    }

    public mutating func probeFailed(_ failure: Failure, now: MonotonicTime) -> Flip? {
        change(now: now, reason: .probeFailed(failure)) { state in
            state.probeSuccesses = 0
            state.probeFailures += 1
            if state.ejectedUntil != nil {
                // The probes see the trouble too: from here they decide the return
                // (`rise` good probes; `awaitingProbes` holds it out until then), so a
                // replica restarted within `fall` probes is not kept out for the cool-down.
                state.ejectedUntil = nil
                state.awaitingProbes = true
            }
            if state.unconfirmed || state.probeFailures >= state.policy.fall {
                state.probeUp = false
                // The probes confirm what traffic saw: from here they alone decide the
                // return (`rise` good probes), so a replica that is restarted comes back
                // in rise × interval instead of waiting out the cool-down.
                state.ejectedUntil = nil
                state.awaitingProbes = false
            }
            state.unconfirmed = false
        }
    }

    /// An exchange with this upstream went well (a response below 500).
    public mutating func exchangeSucceeded() {
        consecutiveFailures = 0
        streakRefusedOnly = false
    }

    /// An exchange failed: connect failure, reset before a response, or a 5xx.
    /// `mayEject` false: the board's `max_ejection_percent` is reached, so a streak that
    /// reaches `consecutiveFailures` is counted as an overflow instead of ejecting —
    /// unless every failure in it was a refused connect. The streak stays at the
    /// threshold, so the next failure ejects once another upstream is back.
    public mutating func exchangeFailed(_ failure: Failure, now: MonotonicTime, mayEject: Bool = true) -> Flip? {
        guard policy.passiveEnabled else { return nil }
        streakRefusedOnly = (consecutiveFailures == 0 || streakRefusedOnly) && failure == .refused
        consecutiveFailures += 1
        guard consecutiveFailures >= policy.consecutiveFailures, ejectedUntil == nil else { return nil }
        guard mayEject || streakRefusedOnly else {
            ejectionsOverflowed += 1
            return nil
        }
        let count = consecutiveFailures
        ejections += 1
        ejectionsTotal += 1
        let coolDown = min(policy.maxEjection, policy.baseEjection * ejections)
        return change(now: now, reason: .ejected(failure, consecutive: count, coolDown: coolDown)) { state in
            state.consecutiveFailures = 0
            state.streakRefusedOnly = false
            state.ejectedUntil = now + coolDown
            if state.policy.activeEnabled {
                state.awaitingProbes = true
                state.probeSuccesses = 0
            }
        }
    }

    /// Time passed: ends a cool-down that is over, forgets old ejections.
    public mutating func tick(now: MonotonicTime) -> Flip? {
        if ejectedUntil == nil, ejections > 0, isReady, let since = readySince, now - since >= policy.maxEjection {
            ejections = 0
        }
        guard let until = ejectedUntil, now >= until else { return nil }
        return change(now: now, reason: .ejectionEnded) { state in
            state.ejectedUntil = nil
            // With probes on, `rise` successes during or after the cool-down bring it back.
            if state.awaitingProbes && state.probeSuccesses >= state.policy.rise { state.awaitingProbes = false }
        }
    }

    public mutating func setEnabled(_ enabled: Bool, now: MonotonicTime) -> Flip? {
        change(now: now, reason: enabled ? .enabled : .disabled) { $0.enabled = enabled }
    }

    /// When a cool-down ends, if one is running.
    public var nextDeadline: MonotonicTime? { ejectedUntil }

    /// Share of full weight and capacity during slow start: ramps linearly from 10 %
    /// to 100 % over `slowStart` after the upstream came back (nginx's `slow_start`,
    /// HAProxy's `slowstart`). 1 when slow start is off or the ramp is over.
    ///
    /// | slow_start 30 s, seconds since back | 0   | 3   | 15   | 30 |
    /// |--------------------------------------|-----|-----|------|----|
    /// | share                                | 0.1 | 0.1 | 0.5  | 1  |
    public func rampShare(now: MonotonicTime) -> Double {
        guard isReady, let since = readySince, policy.slowStart > .zero else { return 1 }
        let elapsed = (now - since) / policy.slowStart
        return min(1, max(HealthPolicy.minimumRampShare, elapsed))
    }

    private mutating func change(now: MonotonicTime, reason: Reason, _ mutate: (inout UpstreamHealth) -> Void) -> Flip? {
        let before = isReady
        mutate(&self)
        let after = isReady
        guard before != after else { return nil }
        // Every return to service ramps (slow start); leaving service ends the ramp.
        readySince = after ? now : nil
        return Flip(ready: after, reason: reason)
    }
}
