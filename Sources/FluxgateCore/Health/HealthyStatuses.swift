/// The answers to an active health probe that count as healthy
/// (`health_check.expected_statuses`). Default 200-399, as HAProxy's `option httpchk`,
/// nginx Plus's `health_check` and Kubernetes' HTTP probes take them: a health path
/// that redirects (`/health` → `/health/`, an app's trailing-slash rule) is an app that
/// answers. Until 2026-12-05 only a 2xx was healthy, so such an app's every upstream
/// went down and every request got 503 `no_healthy_upstream`. `[200]` is Envoy's
/// stance, for a check that must reach the endpoint itself.
public struct HealthyStatuses: Sendable, Equatable, CustomStringConvertible {
    public let ranges: [ClosedRange<Int>]

    public init(_ ranges: [ClosedRange<Int>]) { self.ranges = ranges }

    public static let standard = HealthyStatuses([200...399])

    public func contains(_ status: Int) -> Bool { ranges.contains { $0.contains(status) } }

    /// One list item: a status (`200`) or an inclusive range (`200-399`), within
    /// 200-599 (a 1xx is never a probe's final answer); nil for anything else.
    public static func parse(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count),
            let low = Int(parts[0].trimmingSpaces()), let high = Int(parts[parts.count - 1].trimmingSpaces()),
            200 <= low, low <= high, high <= 599
        else { return nil }
        return low...high
    }

    /// Each range as a list item is written: `200`, `200-399`.
    public var items: [String] {
        ranges.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
    }

    /// `200-399`, `200, 204`: as configured.
    public var description: String { items.joined(separator: ", ") }
}
