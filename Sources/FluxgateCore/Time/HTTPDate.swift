/// The `Date` field the gateway writes (RFC 9110 §6.6.1): an origin with a clock MUST
/// send one on its 2xx-4xx answers, and a proxy forwarding a response that has none
/// MUST add one. The value is the IMF-fixdate of RFC 9110 §5.6.7,
/// `Sun, 06 Nov 1994 08:49:37 GMT`, always 29 bytes.
///
/// Written by hand, from the civil-from-days arithmetic: Foundation's `DateFormatter`
/// is an object whose locale and time zone must be set right (its cost per call was
/// not measured here), and NIO has no formatter of its own. A test checks this one against Foundation's for
/// ten thousand instants across four centuries.
public enum HTTPDate {
    public static let length = 29
    private static let days: StaticString = "ThuFriSatSunMonTueWed"  // 1970-01-01 was a Thursday
    private static let months: StaticString = "JanFebMarAprMayJunJulAugSepOctNovDec"

    /// The date and time of `epochSeconds` (seconds since 1970-01-01 00:00 UTC, not
    /// before it), as its 29 bytes.
    public static func bytes(epochSeconds: Int64) -> [UInt8] {
        let seconds = max(epochSeconds, 0)
        let dayNumber = seconds / 86_400
        let secondOfDay = Int(seconds % 86_400)
        let (year, month, day) = civil(daysSinceEpoch: dayNumber)
        var out: [UInt8] = []
        out.reserveCapacity(length)
        let weekday = Int(dayNumber % 7)
        days.withUTF8Buffer { out.append(contentsOf: $0[(weekday * 3)..<(weekday * 3 + 3)]) }
        out.append(contentsOf: [UInt8(ascii: ","), UInt8(ascii: " ")])
        twoDigits(day, into: &out)
        out.append(UInt8(ascii: " "))
        months.withUTF8Buffer { out.append(contentsOf: $0[((month - 1) * 3)..<((month - 1) * 3 + 3)]) }
        out.append(UInt8(ascii: " "))
        twoDigits(year / 100, into: &out)
        twoDigits(year % 100, into: &out)
        out.append(UInt8(ascii: " "))
        twoDigits(secondOfDay / 3600, into: &out)
        out.append(UInt8(ascii: ":"))
        twoDigits(secondOfDay / 60 % 60, into: &out)
        out.append(UInt8(ascii: ":"))
        twoDigits(secondOfDay % 60, into: &out)
        out.append(contentsOf: [UInt8(ascii: " "), UInt8(ascii: "G"), UInt8(ascii: "M"), UInt8(ascii: "T")])
        return out
    }

    public static func string(epochSeconds: Int64) -> String {
        String(decoding: bytes(epochSeconds: epochSeconds), as: UTF8.self)
    }

    private static func twoDigits(_ value: Int, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "0") + UInt8(value / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(value % 10))
    }

    /// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01 (proleptic
    /// Gregorian calendar; eras of 400 years, years starting in March so the leap day
    /// is the last of its year).
    static func civil(daysSinceEpoch: Int64) -> (year: Int, month: Int, day: Int) {
        let shifted = daysSinceEpoch + 719_468  // days from 0000-03-01
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153  // 0 = March
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}

/// The `date: …\r\n` field line for the current second, rebuilt only when the second
/// changes: every answer within a second shares one formatting. It runs on the monotonic
/// time the caller already read for the event (a clock read per request was 4 % of the
/// gateway's user time once, docs/PERFORMANCE.md): the wall clock is read only when the
/// wall second it last saw may have ended — once per second, at its boundary.
public struct DateFieldLine: Sendable {
    public private(set) var second: Int64 = .min
    public private(set) var line: [UInt8] = []
    /// Monotonic time at which the wall second last read ends.
    private var recheckAt = MonotonicTime(nanoseconds: .min)
    public static let length = 6 + HTTPDate.length + 2

    public init() {}

    /// Brings the line up to date at `now`; `wallClock` (seconds and nanoseconds since
    /// the epoch) is called only when the last second read may be over. True when the
    /// line was rebuilt.
    @discardableResult
    public mutating func update(now: MonotonicTime, wallClock: () -> (seconds: Int64, nanoseconds: Int64)) -> Bool {
        guard now >= recheckAt else { return false }
        let wall = wallClock()
        // Until the next wall second (at least a millisecond on, should the clock step).
        recheckAt = now.advanced(byNanoseconds: max(1_000_000, 1_000_000_000 - wall.nanoseconds))
        return update(epochSeconds: wall.seconds)
    }

    /// True when the line was rebuilt (the second changed).
    @discardableResult
    public mutating func update(epochSeconds: Int64) -> Bool {
        guard epochSeconds != second else { return false }
        second = epochSeconds
        line = Array("date: ".utf8) + HTTPDate.bytes(epochSeconds: epochSeconds) + [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
        return true
    }
}
