import Synchronization

/// How many of the gateway's per-connection and per-request objects are alive.
///
/// Each counted type increments its counter in `init` and decrements it in `deinit`,
/// so the numbers say what the heap holds, not what the code believes it released.
/// They exist because a retain cycle between the client handlers and their
/// `ChannelHandlerContext`s once kept every closed connection alive (about 0.9 KB
/// each, docs/ARCHITECTURE.md "Who owns whom"): nothing else in the process could
/// see it. `swift test` asserts they return to zero after thousands of connections of
/// every kind, and `bench/soak.sh` watches them in a long run.
///
/// One instance per gateway (not a global), so tests that run in parallel in one
/// process do not see each other's connections. Cost: one relaxed atomic add in each
/// `init` and `deinit` — per connection, and per request for ``Exchange``.
public final class LiveObjects: Sendable {
    /// A reading of every counter.
    public struct Counts: Sendable, Equatable, CustomStringConvertible {
        public var clientHandlers: Int
        public var exchanges: Int
        public var upstreamConnections: Int
        /// Client connections parked outside NIO (``ParkingLot``): open, no handler.
        public var parkedConnections: Int = 0
        /// Bytes held for client connections that do not keep up (``StalledClientBudget``).
        public var stalledClientBytes: Int = 0

        /// Open client connections: those with a handler and those parked.
        public var openClientConnections: Int { clientHandlers + parkedConnections }

        public static let zero = Counts(clientHandlers: 0, exchanges: 0, upstreamConnections: 0)

        public var description: String {
            "client handlers \(clientHandlers), exchanges \(exchanges), upstream connections \(upstreamConnections), parked \(parkedConnections), stalled bytes \(stalledClientBytes)"
        }
    }

    let clientHandlers = Atomic<Int>(0)
    let exchanges = Atomic<Int>(0)
    let upstreamConnections = Atomic<Int>(0)
    let parkedConnections = Atomic<Int>(0)
    /// Idle connections that cannot park (TLS, `parser: llhttp`) listed for eviction at
    /// `limits.max_connections` after `timeouts.park_after` (``ParkingLot/listIdle(_:since:)``).
    let idleListed = Atomic<Int>(0)
    public var idleListedConnections: Int { idleListed.load(ordering: .relaxed) }
    /// Bytes held now for client connections that do not keep up, every loop's
    /// ``StalledClientBudget`` together (`fluxgate_stalled_client_bytes`).
    let stalledClientBytes = Atomic<Int>(0)
    /// Parks so far (each connection may park many times).
    let parks = Atomic<Int>(0)
    /// Exchanges created so far (each must end exactly once: ``ExchangeOutcomes``).
    let exchangesCreated = Atomic<Int>(0)
    /// Client connections accepted so far (one handler each).
    let clientHandlersCreated = Atomic<Int>(0)

    public init() {}

    /// ``Exchange``'s bookkeeping, as methods of this object: reached through a stored
    /// atomic (`live.exchanges.born()`), each call also retained and released `live`.
    @inline(__always) func exchangeBorn() {
        exchanges.born()
        exchangesCreated.born()
    }

    @inline(__always) func exchangeDied() { exchanges.died() }

    public var totalExchanges: Int { exchangesCreated.load(ordering: .relaxed) }
    public var totalClientConnections: Int { clientHandlersCreated.load(ordering: .relaxed) }
    public var totalParks: Int { parks.load(ordering: .relaxed) }

    /// Open client connections: those with a handler and those parked.
    public var openClientConnections: Int { counts.openClientConnections }

    public var counts: Counts {
        Counts(
            clientHandlers: clientHandlers.load(ordering: .relaxed),
            exchanges: exchanges.load(ordering: .relaxed),
            upstreamConnections: upstreamConnections.load(ordering: .relaxed),
            parkedConnections: parkedConnections.load(ordering: .relaxed),
            stalledClientBytes: stalledClientBytes.load(ordering: .relaxed))
    }
}

extension Atomic<Int> {
    /// `init`/`deinit` bookkeeping for ``LiveObjects``.
    @inline(__always) func born() { wrappingAdd(1, ordering: .relaxed) }
    @inline(__always) func died() { wrappingSubtract(1, ordering: .relaxed) }
}
