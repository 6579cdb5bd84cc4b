/// The thresholds ``UpstreamHealth`` and ``HealthBoard`` decide with, from
/// `health_check` in the config.
public struct HealthPolicy: Sendable, Equatable {
    /// Active probes run (`health_check.enabled`).
    public var activeEnabled = true
    /// Consecutive good probes that bring an upstream up (HAProxy `rise`). Default 2.
    public var rise = 2
    /// Consecutive failed probes that take it down (HAProxy `fall`). Default 3.
    public var fall = 3
    /// Passive ejection runs (`health_check.passive.enabled`).
    public var passiveEnabled = true
    /// Failed exchanges in a row that eject an upstream (Envoy `consecutive_5xx`). Default 5.
    public var consecutiveFailures = 5
    /// First cool-down; the n-th ejection lasts n times this (Envoy `base_ejection_time`). Default 30 s.
    public var baseEjection: Duration = .seconds(30)
    /// Longest cool-down (Envoy `max_ejection_time`). Default 300 s.
    public var maxEjection: Duration = .seconds(300)
    /// At most this share of the upstreams, in percent, may be passively ejected at once,
    /// but always one (Envoy's `max_ejection_percent`, default 10 %).
    public var maxEjectionPercent = 10.0
    /// When fewer than this share of the upstreams the probes call healthy would be
    /// left after passive ejections, ejections are ignored and traffic goes to all of
    /// them (Envoy's `healthy_panic_threshold`, default 50 %). 0 turns it off.
    public var panicThreshold = 0.5
    /// Ramp of a returning upstream's weight and capacity (nginx `slow_start`). 0 = off.
    public var slowStart: Duration = .zero

    /// The least share a ramping upstream gets, so it sees some traffic at once.
    public static let minimumRampShare = 0.1

    public init() {}
}
