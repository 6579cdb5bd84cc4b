import FluxgateCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Active health checking: probes every upstream every `health_check.interval`
/// (``HealthProbe``) and feeds the results to the ``HealthMonitor``; between rounds it
/// wakes when a passive ejection's cool-down ends or a slow-start ramp steps.
///
/// ``start()`` runs one round before returning — the gateway calls it before opening
/// its listener, so an upstream that is not there is out of rotation before the first
/// request (and one that is there takes traffic at once: upstreams start up,
/// unconfirmed, see ``UpstreamHealth``). Probes of one round run concurrently, each
/// bounded by `health_check.timeout`, which the config keeps within the interval.
///
/// A swift-service-lifecycle `Service`: `run()` starts it if needed and stops it on
/// graceful shutdown. ``GatewayServer`` starts and stops it with the listener.
public final class HealthChecker: Service, Sendable {
    private let runtime: GatewayRuntime
    private let loop: any EventLoop
    private let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Settings are read from the runtime at every round, so a reload's new interval,
    /// timeout, path and upstream list apply from the next round on.
    init(runtime: GatewayRuntime, loop: any EventLoop, logger: Logger) {
        self.runtime = runtime
        self.loop = loop
        self.logger = logger
    }

    private var monitor: HealthMonitor { runtime.health }
    private var config: HealthCheckConfig { runtime.settings.config.healthCheck }

    /// Runs the first round, then keeps checking in the background until ``stop()``.
    public func start() async {
        if config.enabled { await probeRound() }
        let loopTask = Task { [self] in await self.loop() }
        let previous = task.withLock { task in
            defer { task = loopTask }
            return task
        }
        previous?.cancel()
    }

    public func stop() async {
        let running = task.withLock { task in
            defer { task = nil }
            return task
        }
        running?.cancel()
        await running?.value
    }

    public func run() async throws {
        if task.withLock({ $0 == nil }) { await start() }
        try? await gracefulShutdown()
        await stop()
    }

    /// Without active probes, how often cool-downs are looked at (an ejection made by
    /// the data path ends within this of its deadline).
    private static let passivePeriod: Duration = .seconds(1)
    /// Never wake sooner than this after the last wake: a deadline that is already due
    /// must not turn the loop into a spin.
    private static let minimumSleep: Duration = .milliseconds(10)

    private func loop() async {
        var nextRound = MonotonicTime.current + config.interval
        while !Task.isCancelled {
            let now = MonotonicTime.current
            let config = self.config
            let active = config.enabled
            let interval = config.interval
            if nextRound > now + interval { nextRound = now + interval }  // a reload shortened the interval
            var wake = active ? nextRound : now + Self.passivePeriod
            if let review = monitor.nextReview(now: now) { wake = min(wake, review) }
            do { try await Task.sleep(for: max(Self.minimumSleep, wake - now)) } catch { return }
            let after = MonotonicTime.current
            monitor.tick(now: after)
            if active && after >= nextRound {
                // Rounds keep their rhythm; a round that overran starts the next at once.
                nextRound = max(nextRound + interval, after)
                await probeRound()
            }
        }
    }

    /// Probes every upstream once, concurrently, and reports each result as it comes.
    func probeRound() async {
        let settings = runtime.settings
        let config = settings.config.healthCheck
        let timeout = TimeAmount.nanoseconds(config.timeout.nanosecondsClamped)
        await withTaskGroup(of: Void.self) { group in
            for index in monitor.liveSlots where index < settings.targets.count {
                let target = settings.targets[index]
                let request = HealthProbe.request(path: config.path, authority: settings.upstreams[index].hostHeader ?? settings.authorities[index])
                group.addTask { [self] in
                    let tls = index < settings.upstreamTLS.count ? settings.upstreamTLS[index] : nil
                    let probe = HealthProbe.run(
                        target: target, tls: tls, request: request, healthy: config.expectedStatuses, timeout: timeout, on: loop)
                    let failure: UpstreamHealth.Failure?
                    do {
                        failure = try await probe.get()
                    } catch where HealthProbe.isLocalExhaustion(error) {
                        // The gateway is out of descriptors: no verdict on the upstream
                        // (the stress test saw every upstream marked down for it).
                        runtime.noteLocalExhaustion(error, now: MonotonicTime.current)
                        return
                    } catch {
                        failure = .other("\(error)")
                    }
                    if let failure {
                        monitor.probeFailed(index, failure, now: MonotonicTime.current)
                    } else {
                        monitor.probeSucceeded(index, now: MonotonicTime.current)
                    }
                }
            }
        }
    }
}
