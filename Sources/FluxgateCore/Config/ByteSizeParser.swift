/// Parses the sizes of the config file's `*_bytes` keys: a whole number of bytes, or
/// one with a binary unit — `k`, `m`, `g` (any case, × 1024ⁿ, as nginx reads
/// `client_max_body_size 10m`) or `KiB`, `MiB`, `GiB`.
///
/// Decimal units (`KB`, `MB`) are refused rather than guessed: tools disagree on
/// whether they mean 1000 or 1024.
///
/// | text | bytes |
/// |---|---|
/// | `65536` | 65 536 |
/// | `64k`, `64KiB` | 65 536 |
/// | `10m`, `10MiB` | 10 485 760 |
/// | `1g` | 1 073 741 824 |
/// | `1.5m`, `10MB`, `-1k` | refused |
public enum ByteSizeParser {
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces()
        let unitStart = trimmed.firstIndex(where: { !($0.isASCII && $0.isNumber) }) ?? trimmed.endIndex
        guard unitStart != trimmed.startIndex, let value = Int(trimmed[..<unitStart]) else { return nil }
        let multiplier: Int
        switch trimmed[unitStart...] {
        case "": multiplier = 1
        case "k", "K", "KiB": multiplier = 1 << 10
        case "m", "M", "MiB": multiplier = 1 << 20
        case "g", "G", "GiB": multiplier = 1 << 30
        default: return nil
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// `bytes` as the example file writes sizes: with the largest binary unit that
    /// divides it (`16k`, `10m`, `1g`), else in bytes; ``parse(_:)`` reads it back.
    public static func format(_ bytes: Int) -> String {
        guard bytes != 0 else { return "0" }
        for (shift, unit) in [(30, "g"), (20, "m"), (10, "k")] where bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)"
    }
}
