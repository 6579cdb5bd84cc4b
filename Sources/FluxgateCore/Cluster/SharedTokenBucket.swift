/// One replica's side of a global token bucket kept in the shared store (cluster mode).
///
/// The bucket itself lives in Redis (a Lua script refills it and hands out tokens
/// atomically); a replica takes tokens from it in batches of `batch` and spends them
/// locally, so a request never waits on the store. When the stock falls to half a
/// batch it asks for the next one (``take(now:)`` says when, at most one fetch at a
/// time); when the store is empty it says how long until a batch has accrued and the
/// replica does not ask again before then. The store being unreachable switches to a
/// local bucket of `rate / replicas` (`static_share`) or refuses everything
/// (`closed`) until a fetch succeeds again. Pure: time passed in.
///
/// Bound on over-admission: tokens are only ever minted by the store's bucket, so the
/// cluster admits at most `rate × t + burst` plus what replicas hold unspent
/// (`replicas × batch`) — except while falling back, when each replica admits its
/// static share on its own.
public struct SharedTokenBucket: Sendable {
    public enum Mode: String, Sendable, Equatable {
        case shared
        case staticShare = "static_share"
        case closed
    }

    public let rate: Double
    public let burst: Int
    /// Tokens asked for per fetch.
    public let batch: Int
    public let onStoreFailure: StoreFailurePolicy
    public private(set) var mode: Mode = .shared
    /// Tokens fetched and not yet spent.
    public private(set) var stock = 0
    public private(set) var fetching = false
    /// When the fetch in flight was asked for.
    private var fetchStarted: MonotonicTime?
    /// Live replicas at the last answer (the static share's divisor).
    private var replicas: Int
    /// The store said it is empty: no fetch before this.
    private var notBefore: MonotonicTime?
    private var fallback: TokenBucket?

    /// With the stock spent, a fetch unanswered this long counts as failed for the
    /// requests arriving meanwhile: a hung Redis (answering nothing, not refusing)
    /// would otherwise turn every request into a 503 until `command_timeout`.
    public static let patience: Duration = .milliseconds(50)

    /// `batchFraction` of the rate per fetch (at least 1 token, at most the burst);
    /// `replicas`: the static share's divisor until the store has answered.
    public init(rate: Double, burst: Int, batchFraction: Double, onStoreFailure: StoreFailurePolicy, replicas: Int = 1) {
        self.replicas = Swift.max(1, replicas)
        self.rate = rate
        self.burst = burst
        self.batch = Swift.max(1, Swift.min(burst, Int((rate * batchFraction).rounded(.up))))
        self.onStoreFailure = onStoreFailure
    }

    /// Spends a token if one is held. `fetch` asks the caller to start a fetch now
    /// (``fetched(granted:wait:now:)`` or ``fetchFailed(replicas:now:)`` must follow).
    public mutating func take(now: MonotonicTime) -> (decision: TokenBucket.Decision, fetch: Bool) {
        switch mode {
        case .closed:
            return (.denied(retryAfter: .seconds(1)), startFetch(now: now))
        case .staticShare:
            let decision = fallback!.take(now: now)
            return (decision, startFetch(now: now))
        case .shared:
            if stock > 0 {
                stock -= 1
                return (.allowed(remaining: stock), stock <= batch / 2 ? startFetch(now: now) : false)
            }
            if fetching, let fetchStarted, now - fetchStarted >= Self.patience {
                // The answer is late: decide on the fallback until it comes (a late
                // success switches back in ``fetched``).
                fallBack(now: now)
                return take(now: now)
            }
            let wait = notBefore.map { Swift.max($0 - now, .nanoseconds(1)) } ?? .nanoseconds(Int64((1e9 / rate).rounded(.up)))
            return (.denied(retryAfter: wait), startFetch(now: now))
        }
    }

    /// Gives back the token ``take(now:)`` just allowed, for a request a later check
    /// refused: into the stock (it was minted by the store, so the cluster's bound holds)
    /// or the fallback bucket.
    public mutating func refund() {
        switch mode {
        case .shared: stock += 1
        case .staticShare: fallback?.refund()
        case .closed: break
        }
    }

    /// The store handed out `granted` tokens; `wait` is how long until it holds a batch
    /// again when it could not fill this one (zero when it did).
    public mutating func fetched(granted: Int, wait: Duration, replicas: Int, now: MonotonicTime) {
        fetching = false
        fetchStarted = nil
        self.replicas = Swift.max(1, replicas)
        if mode != .shared {
            mode = .shared
            fallback = nil
        }
        stock += Swift.max(0, granted)
        notBefore = wait > .zero ? now + wait : nil
    }

    /// The fetch failed (store unreachable or too slow): fall back until one succeeds.
    public mutating func fetchFailed(replicas: Int, now: MonotonicTime) {
        fetching = false
        fetchStarted = nil
        self.replicas = Swift.max(1, replicas)
        // A failed fetch is retried no sooner than a second later; the next request after that tries.
        notBefore = now + .seconds(1)
        fallBack(now: now)
    }

    private mutating func fallBack(now: MonotonicTime) {
        guard mode == .shared else { return }
        switch onStoreFailure {
        case .staticShare:
            mode = .staticShare
            fallback = TokenBucket(rate: rate / Double(replicas), burst: Swift.max(1, burst / replicas), now: now)
        case .closed:
            mode = .closed
        }
        // Tokens still held are dropped: the fallback bucket decides from now on.
        stock = 0
    }

    private mutating func startFetch(now: MonotonicTime) -> Bool {
        guard !fetching else { return false }
        if let notBefore, now < notBefore { return false }
        fetching = true
        fetchStarted = now
        return true
    }
}
