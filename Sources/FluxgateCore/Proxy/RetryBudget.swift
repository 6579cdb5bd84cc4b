/// How many retries may run at once: a share of the requests in flight, with a floor
/// (Envoy's retry budget: `budget_percent`, `min_retry_concurrency`).
///
/// A fixed retry count multiplies load exactly when an upstream is failing because it
/// is overloaded; a budget tied to in-flight requests cannot: at most `percent` % more
/// work, whatever happens. The floor lets a quiet gateway retry at all.
///
/// | in flight | percent 20, minimum 3 | retries allowed at once |
/// |-----------|-----------------------|-------------------------|
/// | 0         |                       | 3                       |
/// | 10        |                       | 3                       |
/// | 100       |                       | 20                      |
/// | 5 000     |                       | 1 000                   |
public struct RetryBudget: Sendable, Equatable {
    public let percent: Double
    public let minimum: Int
    public private(set) var active = 0

    /// `active`: retries already running (a reload keeps them counted).
    public init(percent: Double, minimum: Int, active: Int = 0) {
        self.percent = percent
        self.minimum = minimum
        self.active = active
    }

    /// Retries allowed at once with `inFlight` requests in flight.
    public func limit(inFlight: Int) -> Int {
        max(minimum, Int((percent / 100 * Double(inFlight)).rounded(.down)))
    }

    /// Takes a place for one retry if the budget has one.
    public mutating func start(inFlight: Int) -> Bool {
        guard active < limit(inFlight: inFlight) else { return false }
        active += 1
        return true
    }

    /// A retry that `start` allowed ended (answered, failed or abandoned).
    public mutating func finish() {
        active = max(0, active - 1)
    }
}
