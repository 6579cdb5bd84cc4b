/// `limits.max_connections` and `limits.max_connections_per_client`: whether one more
/// client connection may open, counted in total and per client address.
///
/// Pure bookkeeping; the listener wraps it in a lock (connections open on the accept
/// path and close on any event loop). Per-address counts exist only while the
/// per-client cap is on and only for addresses with connections open, so memory is
/// bounded by the open connections themselves.
public struct ConnectionLimits: Sendable {
    public enum Refusal: Sendable, Equatable {
        case total
        case perClient
    }

    public var maxTotal: Int
    /// 0: no per-address cap.
    public var maxPerClient: Int
    public private(set) var open = 0
    private var perClient: [String: Int] = [:]

    public init(maxTotal: Int, maxPerClient: Int) {
        self.maxTotal = maxTotal
        self.maxPerClient = maxPerClient
    }

    /// Counts the connection in, or says which cap refuses it (nothing is counted then).
    public mutating func open(address: String) -> Refusal? {
        if open >= maxTotal { return .total }
        if maxPerClient > 0 {
            let current = perClient[address, default: 0]
            if current >= maxPerClient { return .perClient }
            perClient[address] = current + 1
        }
        open += 1
        return nil
    }

    /// A connection that `open(address:)` let in has closed.
    public mutating func close(address: String) {
        open -= 1
        if let current = perClient[address] {
            if current <= 1 { perClient.removeValue(forKey: address) } else { perClient[address] = current - 1 }
        }
    }

    /// Addresses with connections open (while the per-client cap is on).
    public var trackedAddresses: Int { perClient.count }

    /// `limits.max_connections: 0` → 90 % of the descriptor limit: each proxied request
    /// needs a second descriptor upstream, but most client connections are idle
    /// keep-alives, and the rest of the headroom keeps accept from failing outright.
    public static func automaticTotal(descriptorLimit: Int) -> Int {
        max(64, descriptorLimit / 10 * 9)
    }
}
