import Foundation

/// Whether a retry may run: retries in progress within a share of the requests in
/// flight, with a floor (Envoy's retry budget: `budget_percent`,
/// `min_retry_concurrency`) — or, past that, retries within the same share of the
/// requests admitted over about the last second (the volume budget of Finagle's and
/// Linkerd's retry budgets, over a shorter window).
///
/// A fixed retry count multiplies load exactly when an upstream is failing because it
/// is overloaded; a budget tied to the traffic cannot: at most `percent` % more work,
/// whatever happens. The floor lets a quiet gateway retry at all.
///
/// | in flight | percent 20, minimum 3 | retries allowed at once |
/// |-----------|-----------------------|-------------------------|
/// | 0         |                       | 3                       |
/// | 10        |                       | 3                       |
/// | 100       |                       | 20                      |
/// | 5 000     |                       | 1 000                   |
///
/// The concurrency rule alone refuses the burst a replica's crash makes: every request
/// in flight on it is cut off in one instant — a third of those in flight when one of
/// three dies — and all want a retry at once, so those beyond it were answered 502
/// although the other replicas had room (until 2026-12-05: 4 of 7 at a `kill -9` under
/// load, docs/results/dns-members-2026-12-05/). The volume rule lets such a burst through
/// when it is small beside the traffic (by its formula, at 2 000 requests/s and 20 %, up
/// to about 400 retries at once), and still holds retries to `percent` % of the requests
/// when every answer fails: at the onset about a fifth of a second's traffic more, then
/// one retry per five requests (the figures `RetryBudgetTests` checks at 1 000/s). The
/// window is a second, not Finagle's ten, so that onset stays short.
///
/// Both rules count requests by what the admission controller admitted (sheds send
/// nothing upstream and must not buy retries). Time is injected.
public struct RetryBudget: Sendable, Equatable {
    public private(set) var percent: Double
    public private(set) var minimum: Int
    public private(set) var active = 0
    /// Admitted requests and retries, each a sum weighted by `exp(-age / window)`.
    public private(set) var recentRequests = 0.0
    public private(set) var recentRetries = 0.0
    private var admittedSeen: Int
    private var seenAt: MonotonicTime

    public static let window: Duration = .seconds(1)

    /// A new budget, beside a new admission controller (nothing admitted yet) at `now`.
    public init(percent: Double, minimum: Int, now: MonotonicTime) {
        self.percent = percent
        self.minimum = minimum
        self.admittedSeen = 0
        self.seenAt = now
    }

    /// The budget a reload makes: new settings, `previous`'s retries running and recent counts.
    public init(percent: Double, minimum: Int, carrying previous: RetryBudget) {
        self = previous
        self.percent = percent
        self.minimum = minimum
    }

    /// Retries allowed at once with `inFlight` requests in flight (the concurrency rule).
    public func limit(inFlight: Int) -> Int {
        max(minimum, Int((percent / 100 * Double(inFlight)).rounded(.down)))
    }

    /// Takes a place for one retry if either rule has one. `admitted`: requests the
    /// admission controller admitted so far (a running total).
    public mutating func start(inFlight: Int, admitted: Int, now: MonotonicTime) -> Bool {
        observe(admitted: admitted, now: now)
        guard active < limit(inFlight: inFlight) || recentRetries + 1 <= percent / 100 * recentRequests else { return false }
        active += 1
        recentRetries += 1
        return true
    }

    /// A retry that `start` allowed ended (answered, failed or abandoned).
    public mutating func finish() {
        active = max(0, active - 1)
    }

    /// Ages both sums to `now` and adds the requests admitted since the last look, taken
    /// as spread evenly over the time between (the budget is read only when a retry is
    /// wanted: a burst of failures after a quiet minute must not count that minute's
    /// requests as if they had just come).
    private mutating func observe(admitted: Int, now: MonotonicTime) {
        defer { (admittedSeen, seenAt) = (admitted, max(seenAt, now)) }
        let window = Double(Self.window.nanosecondsClamped)
        let elapsed = Double(max(.zero, now - seenAt).nanosecondsClamped)
        let decay = exp(-elapsed / window)
        let arrived = Double(max(0, admitted - admittedSeen))
        // Arrivals spread evenly over `elapsed`, each weighted by its age at `now`:
        // arrived × (window / elapsed) × (1 − decay), that last as -expm1 (exact for a
        // short `elapsed`, where 1 − exp cancels); all of them when no time passed.
        let weighted = elapsed > 0 ? arrived * window / elapsed * -expm1(-elapsed / window) : arrived
        recentRequests = recentRequests * decay + weighted
        recentRetries *= decay
    }
}
