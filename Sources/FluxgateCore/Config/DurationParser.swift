/// Parses the duration strings used in the config file: an integer or decimal number
/// followed by a unit, e.g. `250us`, `500ms`, `2s`, `1.5s`, `1m`, `1h`, or several
/// such pairs (`1m30s`).
///
/// The unit is mandatory: a bare `30` is ambiguous (nginx reads seconds, HAProxy
/// milliseconds), so it is refused with a message that shows the expected form.
public enum DurationParser {
    /// A number and a unit, or several in a row from the largest unit down, added up
    /// (`1m30s`, `1h30m`; nginx's and Go's form): `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`,
    /// `d`. A bare number has no unit and is refused — except `0`, which is zero in every
    /// unit: `park_after: 0` means off, and `idle: 0` is told "must be at least 1ms", not
    /// to add a unit as it was until 2026-12-07.
    ///
    /// | text | duration |
    /// |---|---|
    /// | `500ms` | 0.5 s |
    /// | `1.5s` | 1.5 s |
    /// | `1m30s` | 90 s |
    /// | `2h` | 7 200 s |
    /// | `0` | zero |
    /// | `90`, `1s1m`, `1m 30s` | refused |
    public static func parse(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingSpaces())
        guard !rest.isEmpty else { return nil }
        if rest == "0" { return .zero }
        var total = 0.0
        var previousUnit = Double.infinity
        while !rest.isEmpty {
            guard let unitStart = rest.firstIndex(where: { $0.isLetter }) else { return nil }
            let unitEnd = rest[unitStart...].firstIndex(where: { !$0.isLetter }) ?? rest.endIndex
            let number = rest[..<unitStart]
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                let value = Double(number), value.isFinite,
                let perUnit = nanoseconds(per: rest[unitStart..<unitEnd]), perUnit < previousUnit
            else { return nil }
            total += value * perUnit
            previousUnit = perUnit
            rest = rest[unitEnd...]
        }
        let nanoseconds = total.rounded()
        guard nanoseconds < Double(Int64.max) else { return nil }
        return .nanoseconds(Int64(nanoseconds))
    }

    private static func nanoseconds(per unit: Substring) -> Double? {
        switch unit {
        case "ns": 1
        case "us", "µs": 1_000
        case "ms": 1_000_000
        case "s": 1_000_000_000
        case "m": 60_000_000_000
        case "h": 3_600_000_000_000
        case "d": 86_400_000_000_000
        default: nil
        }
    }

    /// Formats a duration the way the config file writes it (`1s`, `500ms`, `1m`).
    public static func format(_ duration: Duration) -> String {
        let ns = duration.nanosecondsClamped
        if ns != 0, ns % 3_600_000_000_000 == 0 { return "\(ns / 3_600_000_000_000)h" }
        if ns != 0, ns % 60_000_000_000 == 0 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (HTTP's OWS, RFC 9110 §5.6.3).
    public func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
