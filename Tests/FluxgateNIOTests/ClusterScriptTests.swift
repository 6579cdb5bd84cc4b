import FluxgateCore
import FluxgateRedis
import FluxgateTestSupport
import NIOCore
import NIOPosix
import Testing

@testable import FluxgateNIO

/// The two Lua scripts against a real `redis-server`, with the time passed in (the
/// scripts' test hook) so leases expire without waiting.
@Suite(.enabled(if: RedisServer.enabled), .serialized)
struct ClusterScriptTests {
    struct Lease: Equatable {
        var grant: Int
        var replicas: Int
        var peers: [Int]
        /// The predecessor's demand and held slots, while its lease lasts.
        var predecessor: [Int] = []
    }

    final class Store: Sendable {
        let server: RedisServer
        let group: MultiThreadedEventLoopGroup
        let client: RedisClient
        /// The last lease call was made under its aside name.
        nonisolated(unsafe) var renewedAside = false

        init() throws {
            server = try RedisServer()
            group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            client = RedisClient(configuration: .init(host: "127.0.0.1", port: server.port, connectTimeout: .seconds(10), commandTimeout: .seconds(10)), loop: group.next())
        }

        func lease(
            _ id: String, want: Int, running: Int = 0, demand: Int = 0, slots: Int, ttl: Int = 2000, now: Int,
            predecessor: (field: String, moveTo: String?)? = nil, aside: String? = nil
        ) async throws -> Lease {
            var arguments = [id, String(want), String(running), String(demand), String(slots), String(ttl), String(now)]
            arguments += [predecessor?.field ?? "", predecessor?.moveTo ?? "", aside ?? ""]
            let reply = try await client.run(ClusterScripts.lease, keys: ["t:capacity"], arguments: arguments).get()
            let values = try #require(reply.elements)
            try #require(values.count == 5)
            renewedAside = values[4].int == 1
            return Lease(
                grant: Int(values[0].int ?? -1), replicas: Int(values[1].int ?? -1),
                peers: (values[2].elements ?? []).compactMap { $0.int.map(Int.init) }.sorted(),
                predecessor: (values[3].elements ?? []).compactMap { $0.int.map(Int.init) })
        }

        func held() async throws -> [String: String] {
            let entries = try await client.send(["HGETALL", "t:capacity"]).get().elements ?? []
            var held: [String: String] = [:]
            for index in stride(from: 0, to: entries.count - 1, by: 2) {
                guard case .bulkString(let field?) = entries[index], case .bulkString(let value?) = entries[index + 1] else { continue }
                held[String(decoding: field, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
            }
            return held
        }

        func tokens(rate: Double, burst: Int, want: Int, now: Double) async throws -> (granted: Int, wait: Int) {
            let reply = try await client.run(
                ClusterScripts.tokens, keys: ["t:tokens"], arguments: [String(rate), String(burst), String(want), String(now)]
            ).get()
            let values = try #require(reply.elements)
            return (Int(values[0].int ?? -1), Int(values[1].int ?? -1))
        }

        func close() async throws {
            try await client.close().get()
            try await group.shutdownGracefully()
            server.stop()
        }
    }

    /// The grants never add up to more than S, whatever each replica asks for.
    @Test func grantsNeverExceedTheSlots() async throws {
        let store = try Store()
        #expect(try await store.lease("a", want: 80, demand: 80, slots: 100, now: 1000) == Lease(grant: 80, replicas: 1, peers: []))
        #expect(try await store.lease("b", want: 50, demand: 50, slots: 100, now: 1001) == Lease(grant: 20, replicas: 2, peers: [80]))
        #expect(try await store.lease("c", want: 30, demand: 30, slots: 100, now: 1002) == Lease(grant: 0, replicas: 3, peers: [50, 80]))
        // a asks for less: the slots it frees go to the next to ask.
        #expect(try await store.lease("a", want: 40, demand: 40, slots: 100, now: 1250) == Lease(grant: 40, replicas: 3, peers: [30, 50]))
        #expect(try await store.lease("c", want: 30, demand: 30, slots: 100, now: 1251).grant == 30)
        #expect(try await store.lease("b", want: 50, demand: 50, slots: 100, now: 1252).grant == 30)
        try await store.close()
    }

    /// A replica whose share shrank keeps holding the slots its running requests use.
    @Test func runningRequestsStayCountedUntilReported() async throws {
        let store = try Store()
        _ = try await store.lease("a", want: 60, running: 60, slots: 100, now: 1000)
        _ = try await store.lease("a", want: 20, running: 55, slots: 100, now: 1250)
        #expect(try await store.lease("b", want: 80, slots: 100, now: 1251).grant == 45)
        _ = try await store.lease("a", want: 20, running: 10, slots: 100, now: 1500)
        #expect(try await store.lease("b", want: 80, slots: 100, now: 1501).grant == 80)
        try await store.close()
    }

    /// An in-place upgrade's new process names its predecessor's field: it learns that
    /// lease's demand and held slots, which stay counted, until the lease is gone. With
    /// a replica id both share one field, which moves aside (to the name the
    /// predecessor renames itself to) before the successor writes its own lease there.
    @Test func aSuccessorSeesItsPredecessorsLeaseWhichStaysCounted() async throws {
        let store = try Store()
        _ = try await store.lease("host-7", want: 20, running: 20, demand: 18, slots: 20, now: 1000)
        let successor = try await store.lease("host-8", want: 5, slots: 20, now: 1001, predecessor: ("host-7", nil))
        #expect(successor == Lease(grant: 0, replicas: 2, peers: [18], predecessor: [18, 20]))
        _ = try await store.lease("host-7", want: 6, running: 6, slots: 20, now: 1002)  // handing over: 6 still run
        #expect(try await store.lease("host-8", want: 17, slots: 20, now: 1003, predecessor: ("host-7", nil)).predecessor == [0, 6])
        #expect(try await store.lease("host-9", want: 5, slots: 20, now: 1004, predecessor: ("host-3", nil)).predecessor == [], "no such field")
        #expect(try await store.lease("host-8", want: 17, slots: 20, now: 3002, predecessor: ("host-7", nil)).predecessor == [], "expired")

        _ = try await store.client.send(["DEL", "t:capacity"]).get()
        _ = try await store.lease("gw", want: 20, running: 20, demand: 18, slots: 20, now: 2000)
        let moved = try await store.lease("gw", want: 5, slots: 20, now: 2001, predecessor: ("gw", "gw~7"))
        #expect(moved == Lease(grant: 0, replicas: 2, peers: [18], predecessor: [18, 20]))
        #expect(try await store.held() == ["gw~7": "20 18 4000", "gw": "0 0 4001"])
        // The predecessor renews before it is told to hand over: under its aside name,
        // found in the ledger, never over the successor's lease.
        #expect(try await store.lease("gw", want: 20, running: 19, demand: 18, slots: 20, now: 2002, aside: "gw~7").grant == 20)
        #expect(store.renewedAside)
        #expect(try await store.held() == ["gw~7": "20 18 4002", "gw": "0 0 4001"])
        _ = try await store.lease("gw", want: 5, slots: 20, now: 2003, aside: "gw~8")
        #expect(!store.renewedAside, "the successor's own aside name is not there")
        try await store.close()
    }

    /// A replica that stops renewing loses its lease after the TTL, and its slots with it.
    @Test func silentReplicasExpire() async throws {
        let store = try Store()
        _ = try await store.lease("a", want: 70, slots: 100, ttl: 2000, now: 10_000)
        #expect(try await store.lease("b", want: 70, slots: 100, ttl: 2000, now: 11_999).grant == 30)
        let after = try await store.lease("b", want: 70, slots: 100, ttl: 2000, now: 12_000)
        #expect(after == Lease(grant: 70, replicas: 1, peers: []))
        #expect(try await store.client.send(["HEXISTS", "t:capacity", "a"]).get() == .integer(0))
        try await store.close()
    }

    @Test func tokensRefillAtTheRateUpToTheBurst() async throws {
        let store = try Store()
        // A new bucket starts full.
        #expect(try await store.tokens(rate: 100, burst: 50, want: 30, now: 0) == (30, 0))
        #expect(try await store.tokens(rate: 100, burst: 50, want: 30, now: 0) == (20, 300))
        // 100 ms later: 10 tokens accrued.
        #expect(try await store.tokens(rate: 100, burst: 50, want: 30, now: 100) == (10, 300))
        // Long idle: capped at the burst; the wait is for a whole batch (at most the burst).
        #expect(try await store.tokens(rate: 100, burst: 50, want: 80, now: 60_000) == (50, 500))
        try await store.close()
    }

    /// Three replicas hammering one bucket from their own connections get no more than
    /// burst + rate × elapsed between them (the scripts are atomic).
    @Test func concurrentTakersShareOneBucket() async throws {
        let store = try Store()
        let clients = (0..<3).map { _ in RedisClient(configuration: .init(host: "127.0.0.1", port: store.server.port, connectTimeout: .seconds(10), commandTimeout: .seconds(10)), loop: store.group.next()) }
        var futures: [EventLoopFuture<RESPValue>] = []
        for round in 0..<200 {
            for client in clients {
                futures.append(client.run(
                    ClusterScripts.tokens, keys: ["t:tokens"], arguments: ["1000", "100", "7", String(Double(round))]))
            }
        }
        var granted = 0
        for future in futures { granted += Int(try await future.get().elements?[0].int ?? 0) }
        // At most the burst plus 199 ms of refill at 1000/s (less when a client's
        // earlier "now" arrives after a later one: time never runs backwards in the bucket).
        #expect(granted <= 100 + 199)
        #expect(granted >= 100)
        for client in clients { try await client.close().get() }
        try await store.close()
    }
}
