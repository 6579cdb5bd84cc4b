/// A token bucket: `rate` tokens per second, at most `burst` held.
///
/// Knows no HTTP: it answers "allowed" or "retry after Δ", where Δ is the exact time
/// until the next whole token (model: pingora-limits' rate estimator answering a
/// decision, the proxy deciding the status). Time is passed in.
///
/// `retryAfter = (1 − tokens) / rate` when empty:
///
/// | rate /s | tokens left | retry after |
/// |---|---|---|
/// | 10 | 0 | 100 ms |
/// | 10 | 0.5 | 50 ms |
/// | 1000 | 0 | 1 ms |
/// | 0.5 | 0 | 2 s |
public struct TokenBucket: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case allowed(remaining: Int)
        case denied(retryAfter: Duration)
    }

    public let rate: Double
    public let burst: Double
    public private(set) var tokens: Double
    private var updated: MonotonicTime

    /// Starts full, as nginx's `limit_req` burst and Envoy's local rate limit do.
    public init(rate: Double, burst: Int, now: MonotonicTime) {
        precondition(rate > 0 && burst >= 1)
        self.rate = rate
        self.burst = Double(burst)
        self.tokens = Double(burst)
        self.updated = now
    }

    public mutating func take(now: MonotonicTime) -> Decision {
        refill(now)
        if tokens >= 1 {
            tokens -= 1
            return .allowed(remaining: Int(tokens))
        }
        // Clamped: config keeps rate ≥ 0.001/s, but no rate may overflow the conversion.
        let nanoseconds = min(((1 - tokens) / rate * 1e9).rounded(.up), Self.longestWait)
        return .denied(retryAfter: .nanoseconds(Int64(nanoseconds)))
    }

    /// Gives back a token taken by ``take(now:)`` for a request a later check refused
    /// (as nginx rolls back its earlier `limit_req` zones when a later one rejects):
    /// a refused request costs its client no rate. Never above `burst`.
    public mutating func refund() {
        tokens = min(burst, tokens + 1)
    }

    /// Whole tokens available now, without taking one.
    public mutating func available(now: MonotonicTime) -> Int {
        refill(now)
        return Int(tokens)
    }

    /// A day: the longest wait a denial reports.
    static let longestWait = 86_400e9

    private mutating func refill(_ now: MonotonicTime) {
        guard now > updated else { return }
        let elapsed = Double(now.nanoseconds - updated.nanoseconds) / 1e9
        tokens = min(burst, tokens + elapsed * rate)
        updated = now
    }
}
