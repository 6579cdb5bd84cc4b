/// Parses the duration strings used in the config file: an integer or decimal number
/// followed by a unit, e.g. `250us`, `500ms`, `2s`, `1.5s`, `1m`, `1h`.
///
/// The unit is mandatory: a bare `30` is ambiguous (nginx reads seconds, HAProxy
/// milliseconds), so it is refused with a message that shows the expected form.
public enum DurationParser {
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingSpaces()
        guard let unitStart = trimmed.firstIndex(where: { $0.isLetter }) else { return nil }
        let number = trimmed[..<unitStart]
        let unit = trimmed[unitStart...]
        guard !number.isEmpty, let value = Double(number), value >= 0, value.isFinite else { return nil }
        let nanosecondsPerUnit: Double
        switch unit {
        case "ns": nanosecondsPerUnit = 1
        case "us", "µs": nanosecondsPerUnit = 1_000
        case "ms": nanosecondsPerUnit = 1_000_000
        case "s": nanosecondsPerUnit = 1_000_000_000
        case "m": nanosecondsPerUnit = 60_000_000_000
        case "h": nanosecondsPerUnit = 3_600_000_000_000
        default: return nil
        }
        let nanoseconds = (value * nanosecondsPerUnit).rounded()
        guard nanoseconds < Double(Int64.max) else { return nil }
        return .nanoseconds(Int64(nanoseconds))
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
