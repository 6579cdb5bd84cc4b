import Foundation

/// The process's descriptor limit (`RLIMIT_NOFILE`), which sizes the automatic
/// `limits.max_connections` (``ConnectionLimits/automaticTotal(descriptorLimit:descriptorsPerConnection:)``).
public enum DescriptorLimit {
    /// The most ``raiseToHardLimit()`` asks for: HAProxy's safeguard for hosts whose
    /// hard limit is `fs.nr_open` (systemd 256 sets it to about a billion).
    static let ceiling = 1 << 20

    /// The soft limit now.
    public static var current: Int {
        var limit = rlimit()
        guard get(&limit) else { return 1024 }
        return limit.rlim_cur == rlim_t.max ? ceiling : Int(clamping: limit.rlim_cur)
    }

    /// Raises the soft limit to the hard one (at most ``ceiling``), as HAProxy does at
    /// start and Go programs do: a soft limit of 1 024 is the default for services on
    /// most distributions while their hard limit is far higher, and a proxy needs two
    /// descriptors per connection. Returns the limits before and after, or nil when
    /// nothing changed (already there, or the system refused).
    public static func raiseToHardLimit() -> (from: Int, to: Int)? {
        var limit = rlimit()
        guard get(&limit) else { return nil }
        let target = limit.rlim_max == rlim_t.max ? rlim_t(ceiling) : min(limit.rlim_max, rlim_t(ceiling))
        guard limit.rlim_cur < target else { return nil }
        let from = Int(clamping: limit.rlim_cur)
        limit.rlim_cur = target
        guard set(limit) else { return nil }
        return (from, Int(clamping: target))
    }

    private static func get(_ limit: inout rlimit) -> Bool {
        #if os(Linux)
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0
        #else
        getrlimit(RLIMIT_NOFILE, &limit) == 0
        #endif
    }

    private static func set(_ limit: rlimit) -> Bool {
        var limit = limit
        #if os(Linux)
        return setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0
        #else
        return setrlimit(RLIMIT_NOFILE, &limit) == 0
        #endif
    }
}
