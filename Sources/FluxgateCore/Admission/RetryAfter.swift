/// `Retry-After` values computed from limiter state (RFC 9110 §10.2.3: whole seconds).
///
/// Never a constant: a token bucket says exactly when its next token arrives; a
/// queue's drain estimate is stretched by a jitter factor so that refused clients do
/// not all come back in the same second (the thundering herd AWS's backoff-and-jitter
/// note describes).
///
/// | wait | jitter | Retry-After |
/// |---|---|---|
/// | 1 ms | 0 | 1 |
/// | 1.2 s | 0 | 2 |
/// | 2 s | 0.5 | 3 |
/// | 10 s | 0.25 | 13 |
public enum RetryAfter {
    /// Whole seconds, at least 1: `ceil(wait × (1 + jitter))`.
    public static func seconds(_ wait: Duration, jitter: Double = 0) -> Int {
        let stretched = wait.secondsDouble * (1 + max(0, jitter))
        return max(1, Int(stretched.rounded(.up)))
    }
}
