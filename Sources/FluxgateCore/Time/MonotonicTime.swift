/// A point on a monotonic clock, in nanoseconds since an arbitrary origin.
///
/// Decision types take the current time as a parameter instead of reading a clock,
/// so tests drive them with exact values. The I/O layer feeds
/// `NIODeadline.uptimeNanoseconds` in; tests feed whatever they like.
public struct MonotonicTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    public static let zero = MonotonicTime(nanoseconds: 0)

    public static func < (lhs: MonotonicTime, rhs: MonotonicTime) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    public static func + (lhs: MonotonicTime, rhs: Duration) -> MonotonicTime {
        lhs.advanced(byNanoseconds: rhs.nanosecondsClamped)
    }

    /// `self` plus a span already in nanoseconds (no `Duration` conversion: hot paths
    /// keep their timeouts as nanoseconds).
    @inlinable
    public func advanced(byNanoseconds nanoseconds: Int64) -> MonotonicTime {
        MonotonicTime(nanoseconds: self.nanoseconds &+ nanoseconds)
    }

    public static func - (lhs: MonotonicTime, rhs: MonotonicTime) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    public var description: String { "\(self.nanoseconds)ns" }
}

extension Duration {
    /// The duration in whole nanoseconds (truncated toward zero), clamped to `Int64`'s
    /// range. Called several times per request (deadlines, latency histograms), so it
    /// avoids `components`, whose 128-bit division was 1.4 % of the gateway's user time
    /// in a profile (docs/PERFORMANCE.md): under ~9.2 s the attoseconds fit in 64 bits
    /// and dividing them by a constant is a multiply; longer ones take one 128-by-64-bit
    /// division.
    public var nanosecondsClamped: Int64 {
        let attoseconds = self.attoseconds
        if let small = Int64(exactly: attoseconds) { return small / 1_000_000_000 }
        let magnitude = attoseconds.magnitude
        let high = UInt64(truncatingIfNeeded: magnitude >> 64)
        // The quotient fits in 64 bits exactly when the high word is below the divisor.
        guard high < 1_000_000_000 else { return attoseconds < 0 ? .min : .max }
        let (quotient, _) = UInt64(1_000_000_000).dividingFullWidth((high: high, low: UInt64(truncatingIfNeeded: magnitude)))
        if attoseconds < 0 {
            return quotient > Int64.min.magnitude ? .min : Int64(truncatingIfNeeded: 0 &- quotient)
        }
        return quotient > UInt64(Int64.max) ? .max : Int64(quotient)
    }

    /// Seconds as a `Double`, for reports and `Retry-After` arithmetic.
    public var secondsDouble: Double {
        // Under ~9.2 s the attoseconds fit in 64 bits: no `components` (a 128-bit
        // division), which a shed's `Retry-After` paid on every request (perf, 2026-12-06).
        if let small = Int64(exactly: attoseconds) { return Double(small) / 1e18 }
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A `Duration` kept as whole nanoseconds (clamped to `Int64`, sub-nanosecond parts
/// dropped), for timeouts that hot paths add to ``MonotonicTime`` readings: the
/// projected value (`$name`) is the nanosecond count, with no conversion per use.
@propertyWrapper
public struct NanosecondsStored: Sendable, Hashable {
    public private(set) var nanoseconds: Int64

    public init(wrappedValue: Duration) {
        self.nanoseconds = wrappedValue.nanosecondsClamped
    }

    public var wrappedValue: Duration {
        get { .nanoseconds(nanoseconds) }
        set { nanoseconds = newValue.nanosecondsClamped }
    }

    public var projectedValue: Int64 { nanoseconds }
}
