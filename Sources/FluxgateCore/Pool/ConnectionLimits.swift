/// `limits.max_connections` and `limits.max_connections_per_client`: whether one more
/// client connection may open, counted in total and per client — an IPv4 address, or
/// an IPv6 address's `/ipv6Prefix` network (``AddressRange/clientKey(_:ipv6Prefix:)``).
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
    /// Connections let in above `maxTotal` on the promise of an eviction on another
    /// event loop (``open(address:evictableElsewhere:)``) not yet carried out.
    public private(set) var evictionsPromised = 0
    private var perClient: [String: Int] = [:]
    /// Fixed for the process (`limits.client_ipv6_prefix` is restart-only): a
    /// connection is counted out under the key it was counted in with.
    public let ipv6Prefix: Int

    public init(maxTotal: Int, maxPerClient: Int, ipv6Prefix: Int = 128) {
        self.maxTotal = maxTotal
        self.maxPerClient = maxPerClient
        self.ipv6Prefix = ipv6Prefix
    }

    /// Counts the connection in, or says which cap refuses it (nothing is counted then).
    /// The per-client cap is asked first, so `.total` means only the total stands in the
    /// way — the gateway then makes room by closing a parked connection, which would be
    /// for nothing if the per-client cap refused the newcomer anyway.
    public mutating func open(address: String) -> Refusal? {
        open(address: address, evictableElsewhere: 0)
    }

    /// As ``open(address:)``, at `maxTotal` with `evictableElsewhere` idle connections
    /// on the gateway's other event loops (the loop the newcomer arrived on has none to
    /// close): the newcomer is let in above the total while one of them is not promised
    /// to an earlier newcomer yet, and the caller asks that loop to close its
    /// longest-idle connection, then reports it with ``evictionCarriedOut()`` — so an
    /// idle connection makes room wherever it is parked, and a burst of newcomers is let
    /// in above the total by at most as many connections as are idle. A promised
    /// eviction counts as done already (the total is compared with `open −
    /// evictionsPromised`), so a place freed meanwhile by a local eviction is the
    /// newcomer's, not lost to the promise.
    ///
    /// | open / max | evictable elsewhere | promised | newcomer            |
    /// |------------|---------------------|----------|---------------------|
    /// | 9 / 10     | any                 | 0        | in                  |
    /// | 10 / 10    | 0                   | 0        | refused (`.total`)  |
    /// | 10 / 10    | 2                   | 0        | in, promised 1      |
    /// | 11 / 10    | 2                   | 1        | in, promised 2      |
    /// | 12 / 10    | 2                   | 2        | refused (`.total`)  |
    /// | 11 / 10    | 0                   | 1        | refused (`.total`)  |
    /// | 10 / 10    | 0                   | 1        | in (a local eviction freed a place) |
    public mutating func open(address: String, evictableElsewhere: Int) -> Refusal? {
        var current = 0
        var key = address
        if maxPerClient > 0 {
            key = AddressRange.clientKey(address, ipv6Prefix: ipv6Prefix)
            current = perClient[key, default: 0]
            if current >= maxPerClient { return .perClient }
        }
        if open - evictionsPromised >= maxTotal {
            guard evictionsPromised < evictableElsewhere else { return .total }
            evictionsPromised += 1
        }
        if maxPerClient > 0 { perClient[key] = current + 1 }
        open += 1
        return nil
    }

    /// An eviction promised by ``open(address:evictableElsewhere:)`` was carried out
    /// (its connection's ``close(address:)`` counted it out) or found nothing left to
    /// close (the newcomer then stays counted above the total until a connection closes).
    public mutating func evictionCarriedOut() {
        evictionsPromised = max(0, evictionsPromised - 1)
    }

    /// A connection that `open(address:)` let in has closed.
    public mutating func close(address: String) {
        open -= 1
        guard !perClient.isEmpty else { return }
        let key = AddressRange.clientKey(address, ipv6Prefix: ipv6Prefix)
        if let current = perClient[key] {
            if current <= 1 { perClient.removeValue(forKey: key) } else { perClient[key] = current - 1 }
        }
    }

    /// Clients with connections open (while the per-client cap is on).
    public var trackedAddresses: Int { perClient.count }

    /// Descriptors kept out of the automatic client limit for everything that is not a
    /// connection pair: the listeners, the event loops' epoll, event and timer
    /// descriptors, the parking watcher, log files, health probes, Redis.
    public static let reservedDescriptors = 64

    /// `limits.max_connections: 0` → what the descriptor limit allows when every client
    /// connection is proxied: each one needs a second descriptor for its upstream
    /// connection (a third with the embedded demo upstream, whose server side lives in
    /// the same process). Client connections alone must never take the descriptors the
    /// upstream side needs: with 90 % of the limit as the cap, that many idle client
    /// connections left no descriptor for an upstream connect, and every request that
    /// needed a new upstream connection was answered 503 `gateway_out_of_resources` until
    /// some closed (found by holding idle connections against a low descriptor limit;
    /// `bench/descriptor-flood.sh`, docs/SECURITY.md#out-of-descriptors). Beyond the cap
    /// a new connection gets 503 `too_many_connections` and the open ones keep working.
    /// HAProxy derives its `maxconn` the same way (two descriptors per connection), and
    /// Envoy's guidance is to keep connection limits under half the descriptor limit.
    ///
    /// | descriptor limit | per connection | client connections |
    /// |---|---|---|
    /// | 1 024 | 2 | 480 |
    /// | 20 000 | 2 | 9 968 |
    /// | 1 048 576 | 2 | 524 256 |
    /// | 1 024 | 3 (embedded demo) | 320 |
    public static func automaticTotal(descriptorLimit: Int, descriptorsPerConnection: Int = 2) -> Int {
        max(64, (descriptorLimit - reservedDescriptors) / max(1, descriptorsPerConnection))
    }
}
