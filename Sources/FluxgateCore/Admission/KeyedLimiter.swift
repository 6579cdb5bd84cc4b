/// Token buckets per client key with a hard bound on how many keys are tracked.
///
/// A flood of distinct keys (spoofed API keys, a botnet's addresses) must not grow
/// memory without limit: at `capacity` keys the least recently used one is evicted
/// (its client starts again with a full bucket — the same trade nginx's
/// `limit_req_zone` makes when its zone is full, minus the 503s). Storage is one
/// dictionary plus an array-backed doubly linked list, so memory is O(capacity) and
/// every operation O(1).
public struct KeyedLimiter<Key: Hashable & Sendable>: Sendable {
    private struct Entry: Sendable {
        var key: Key
        var bucket: TokenBucket
        var older: Int
        var newer: Int
    }

    public let rate: Double
    public let burst: Int
    public let capacity: Int
    private var index: [Key: Int] = [:]
    private var entries: [Entry] = []
    private var newest = -1
    private var oldest = -1
    public private(set) var evictions = 0

    public init(rate: Double, burst: Int, capacity: Int) {
        precondition(capacity >= 1)
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        index.reserveCapacity(min(capacity, 1 << 16))
    }

    public var count: Int { index.count }

    public mutating func take(_ key: Key, now: MonotonicTime) -> TokenBucket.Decision {
        if let slot = index[key] {
            touch(slot)
            return entries[slot].bucket.take(now: now)
        }
        var bucket = TokenBucket(rate: rate, burst: burst, now: now)
        let decision = bucket.take(now: now)
        insert(key, bucket)
        return decision
    }

    /// What ``take(_:now:)`` would decide for `key` now, taking nothing and touching
    /// nothing (``AdmissionChecks/preview(clientKey:priority:now:jitter:)``).
    public func peek(_ key: Key, now: MonotonicTime) -> TokenBucket.Decision {
        var bucket = index[key].map { entries[$0].bucket } ?? TokenBucket(rate: rate, burst: burst, now: now)
        return bucket.take(now: now)
    }

    /// Gives back the token ``take(_:now:)`` just took for `key` (see ``TokenBucket/refund()``);
    /// nothing when the key was evicted meanwhile.
    public mutating func refund(_ key: Key) {
        guard let slot = index[key] else { return }
        entries[slot].bucket.refund()
    }

    private mutating func insert(_ key: Key, _ bucket: TokenBucket) {
        let slot: Int
        if entries.count < capacity {
            slot = entries.count
            entries.append(Entry(key: key, bucket: bucket, older: -1, newer: -1))
        } else {
            // Reuse the least recently used entry's storage.
            slot = oldest
            index.removeValue(forKey: entries[slot].key)
            unlink(slot)
            evictions += 1
            entries[slot] = Entry(key: key, bucket: bucket, older: -1, newer: -1)
        }
        index[key] = slot
        linkAsNewest(slot)
    }

    private mutating func touch(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        linkAsNewest(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let older = entries[slot].older
        let newer = entries[slot].newer
        if older >= 0 { entries[older].newer = newer } else { oldest = newer }
        if newer >= 0 { entries[newer].older = older } else { newest = older }
        entries[slot].older = -1
        entries[slot].newer = -1
    }

    private mutating func linkAsNewest(_ slot: Int) {
        entries[slot].older = newest
        entries[slot].newer = -1
        if newest >= 0 { entries[newest].newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }

    /// Keys from least to most recently used (for tests and diagnostics).
    public var keysByRecency: [Key] {
        var keys: [Key] = []
        var slot = oldest
        while slot >= 0 {
            keys.append(entries[slot].key)
            slot = entries[slot].newer
        }
        return keys
    }
}
