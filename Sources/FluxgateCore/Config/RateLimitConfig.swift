/// Token buckets (`rate_limit`), see ``TokenBucket`` and ``KeyedLimiter``.
public struct RateLimitConfig: Sendable, Equatable {
    public var global = GlobalLimit()
    public var perClient = PerClientLimit()
    public init() {}

    public struct GlobalLimit: Sendable, Equatable {
        public var enabled = true
        /// Count what would be shed, shed nothing. Default false.
        public var dryRun = false
        /// Tokens per second. Default 50000.
        public var rate = 50_000.0
        /// Bucket capacity. Default 10000.
        public var burst = 10_000
        /// Cluster mode: tokens taken from the shared bucket per fetch, as a share of
        /// `rate`. Default 0.02 (1000 tokens at 50000/s).
        public var batch = 0.02
        /// Cluster mode, Redis unreachable: `static_share` (rate / replicas) or `closed`.
        public var onStoreFailure = StoreFailurePolicy.staticShare
        public init() {}
    }

    public struct PerClientLimit: Sendable, Equatable {
        /// Opt-in (docs/CONFIGURATION.md, `rate_limit.per_client`): behind a load balancer, or in a one-host load test, every
        /// client shares one address. Default false.
        public var enabled = false
        /// Count what would be shed, shed nothing. Default false.
        public var dryRun = false
        /// Tokens per second per client. Default 1000.
        public var rate = 1_000.0
        /// Bucket capacity per client. Default 2000.
        public var burst = 2_000
        /// `ip`, or `header:<Name>` to key by a request header such as `X-API-Key`.
        public var key = "ip"
        /// Hard bound on tracked clients (least recently used evicted). Default 100000.
        public var maxClients = 100_000
        public init() {}
    }
}
