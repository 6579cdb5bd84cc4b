/// Active and passive health checking (`health_check`), see ``UpstreamHealth``.
public struct HealthCheckConfig: Sendable, Equatable {
    /// Active probes on. Default true.
    public var enabled = true
    /// Path probed with `GET`. Default `/health`.
    public var path = "/health"
    /// Probe answers that count as healthy (``HealthyStatuses``). Default 200-399.
    public var expectedStatuses = HealthyStatuses.standard
    /// Time between probes. Default 2s.
    public var interval: Duration = .seconds(2)
    /// Probe timeout. Default 1s.
    public var timeout: Duration = .seconds(1)
    /// Consecutive successes that bring an upstream up. Default 2.
    public var rise = 2
    /// Consecutive failures that take an upstream down. Default 3.
    public var fall = 3
    /// A returning upstream's weight and capacity ramp up over this long. Default 0s (off).
    public var slowStart: Duration = .zero
    /// Passive checks from real traffic (`health_check.passive`).
    public var passive = PassiveHealthConfig()
    public init() {}

    /// The soonest a down upstream can be back, for `Retry-After` on
    /// 503 `no_healthy_upstream`: `rise` probes at `interval` (2 × 2 s = 4 s by
    /// default); without active checks, the first ejection's cool-down.
    public var recoveryEstimate: Duration {
        enabled ? interval * rise : passive.baseEjection
    }

    /// The thresholds the pure health types decide with.
    public var policy: HealthPolicy {
        var policy = HealthPolicy()
        policy.activeEnabled = enabled
        policy.rise = rise
        policy.fall = fall
        policy.slowStart = slowStart
        policy.passiveEnabled = passive.enabled
        policy.consecutiveFailures = passive.consecutiveFailures
        policy.baseEjection = passive.baseEjection
        policy.maxEjection = passive.maxEjection
        policy.maxEjectionPercent = passive.maxEjectionPercent
        policy.panicThreshold = passive.panicThreshold
        return policy
    }
}

/// Passive ejection (`health_check.passive`), Envoy's outlier detection in small.
public struct PassiveHealthConfig: Sendable, Equatable {
    /// Default true.
    public var enabled = true
    /// Failed requests in a row (connect failure, reset, timeout, 5xx) that eject. Default 5.
    public var consecutiveFailures = 5
    /// First ejection's cool-down; the n-th lasts n times this. Default 30s.
    public var baseEjection: Duration = .seconds(30)
    /// Longest cool-down. Default 300s.
    public var maxEjection: Duration = .seconds(300)
    /// At most this percentage of the upstreams ejected at once, but always one
    /// (Envoy's `max_ejection_percent`). Default 10.
    public var maxEjectionPercent = 10.0
    /// Below this share of probe-healthy upstreams left, ejections are ignored. Default 0.5.
    public var panicThreshold = 0.5
    public init() {}
}
