import Prometheus
import Synchronization

/// Everything one demo instance shares across its connections (and event loops):
/// the user store, the health switch, counters, and the Prometheus registry that
/// exposes them on `/metrics`.
public final class DemoState: Sendable {
    public let instance: String
    public let capacity: Int
    private let store: Mutex<UserStore>
    private let failing: Atomic<Bool>
    private let inFlightCount = Atomic<Int>(0)
    private let totals = Mutex<(total: Int, successful: Int, error: Int, rejected: Int)>((0, 0, 0, 0))
    public let registry = PrometheusCollectorRegistry()
    private let requestsTotal: Counter
    private let successfulTotal: Counter
    private let errorTotal: Counter
    private let rejectedTotal: Counter
    private let inFlightGauge: Gauge
    private let healthyGauge: Gauge

    public init(instance: String, capacity: Int, failHealth: Bool = false, userCapacity: Int = 10_000) {
        self.instance = instance
        self.capacity = capacity
        self.store = Mutex(UserStore(capacity: userCapacity))
        self.failing = Atomic(failHealth)
        let labels = [("instance", instance)]
        requestsTotal = registry.makeCounter(descriptor: .whole("fluxor_demo_requests_total", help: "Requests answered."), labels: labels)
        successfulTotal = registry.makeCounter(descriptor: .whole("fluxor_demo_requests_successful_total", help: "Requests answered 2xx/3xx."), labels: labels)
        errorTotal = registry.makeCounter(descriptor: .whole("fluxor_demo_requests_error_total", help: "Requests answered 4xx/5xx, rejections excluded."), labels: labels)
        rejectedTotal = registry.makeCounter(descriptor: .whole("fluxor_demo_requests_rejected_total", help: "Requests refused with 503 over max_inflight."), labels: labels)
        inFlightGauge = registry.makeGauge(descriptor: .whole("fluxor_demo_in_flight_requests", help: "Requests being served."), labels: labels)
        let capacityGauge = registry.makeGauge(descriptor: .whole("fluxor_demo_capacity_requests", help: "Requests served concurrently at full speed."), labels: labels)
        capacityGauge.set(Double(capacity))
        healthyGauge = registry.makeGauge(descriptor: .whole("fluxor_demo_healthy", help: "1 while the health check passes."), labels: labels)
        healthyGauge.set(failHealth ? 0.0 : 1.0)
    }

    // MARK: Health switch

    public var isFailingHealth: Bool { failing.load(ordering: .relaxed) }

    public func setFailingHealth(_ value: Bool) {
        failing.store(value, ordering: .relaxed)
        healthyGauge.set(value ? 0.0 : 1.0)
    }

    // MARK: Users

    public func withUsers<T>(_ body: (inout UserStore) throws -> T) rethrows -> T {
        try store.withLock { try body(&$0) }
    }

    // MARK: Load and counters

    public var inFlight: Int { inFlightCount.load(ordering: .relaxed) }

    /// Counts a request in; returns the in-flight count including it.
    @discardableResult
    public func requestStarted() -> Int {
        inFlightGauge.increment()
        return inFlightCount.wrappingAdd(1, ordering: .relaxed).newValue
    }

    public func requestFinished(status: Int, rejected: Bool = false) {
        inFlightCount.wrappingSubtract(1, ordering: .relaxed)
        inFlightGauge.decrement()
        requestsTotal.increment()
        totals.withLock { totals in
            totals.total += 1
            if rejected {
                totals.rejected += 1
            } else if status < 400 {
                totals.successful += 1
            } else {
                totals.error += 1
            }
        }
        if rejected {
            rejectedTotal.increment()
        } else if status < 400 {
            successfulTotal.increment()
        } else {
            errorTotal.increment()
        }
    }

    public var counts: (total: Int, successful: Int, error: Int, rejected: Int) { totals.withLock { $0 } }
}

extension MetricNameDescriptor {
    /// A metric named whole (swift-prometheus deprecates naming by string and help; its
    /// descriptor joins the non-empty parts, so an empty unit leaves the name as given).
    static func whole(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
