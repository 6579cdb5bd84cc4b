import FluxgateCore
import FluxgateTestSupport
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import FluxgateNIO

/// Parked connections (``ParkingLot``), over real loopback sockets: an idle client
/// connection leaves NIO after `timeouts.park_after` and comes back on the same socket
/// when its client sends again; while parked it still counts as open, still ends at
/// its idle timeout, and the drain closes it.
@Suite(.timeLimit(.minutes(1)))
struct ParkingTests {
    static func withParkingGateway(
        idle: Duration = .seconds(10), loops: Int = 2, _ adjust: @escaping (inout GatewayConfig) -> Void = { _ in },
        _ body: (GatewayHarness, TestUpstream) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        let upstream = try await TestUpstream.start(name: "a", group: group)
        let config = try makeConfig(upstreams: [upstream.url]) { config in
            config.timeouts.parkAfter = .milliseconds(50)
            config.timeouts.idle = idle
            adjust(&config)
        }
        try await withGateway(config, group: group) { try await body($0, upstream) }
        try await upstream.stop()
        try await group.shutdownGracefully()
    }

    static func answers(_ sink: RawClient.Sink) -> Int {
        sink.outcome.text.components(separatedBy: "HTTP/1.1 200 OK").count - 1
    }

    @Test func anIdleConnectionIsParkedAndServedAgainOnItsSocket() async throws {
        try await Self.withParkingGateway { harness, upstream in
            let live = harness.gateway.liveObjects
            let (channel, sink) = try await RawClient.open(with: harness.address, group: harness.group)
            guardAgainstHanging(channel)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the first answer") { Self.answers(sink) == 1 }
            try await eventually("parked: \(live.counts)") { live.counts.parkedConnections == 1 && live.counts.clientHandlers == 0 }
            // Still open for the connection limits, and once in the accepted total.
            #expect(harness.gateway.openClientConnections == 1)
            #expect(live.totalClientConnections == 1)
            #expect(live.openClientConnections == 1)

            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/2 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the answer after parking") { Self.answers(sink) == 2 }
            #expect(upstream.count("/n/2") == 1)

            // A head that arrives in two parts while parked: the first wakes it, the
            // kernel keeps whatever comes before the new channel reads.
            try await eventually("parked again") { live.counts.parkedConnections == 1 }
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/3 HTTP/1.1\r\n"))
            try await channel.writeAndFlush(ByteBuffer(string: "Host: h\r\n\r\n"))
            try await eventually("the answer to a head in parts") { Self.answers(sink) == 3 }
            #expect(live.totalClientConnections == 1, "a resumed connection is not a new one")
            #expect(live.totalParks >= 2)
            #expect(sink.outcome.error == nil)

            try await channel.close()
            try await eventually("released: \(live.counts)") {
                live.counts.clientHandlers == 0 && live.counts.parkedConnections == 0 && harness.gateway.openClientConnections == 0
            }
        }
    }

    /// A connection's requests are counted across parking: the wake-up does not start
    /// `limits.max_requests_per_connection` afresh (nor `timeouts.max_connection_age`,
    /// which travels in the same value).
    @Test func aWokenConnectionKeepsItsRequestCount() async throws {
        try await Self.withParkingGateway({ $0.limits.maxRequestsPerConnection = 2 }) { harness, upstream in
            let live = harness.gateway.liveObjects
            let (channel, sink) = try await RawClient.open(with: harness.address, group: harness.group)
            guardAgainstHanging(channel)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the first answer") { Self.answers(sink) == 1 }
            try await eventually("parked: \(live.counts)") { live.counts.parkedConnections == 1 }
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/2 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await channel.closeFuture.get()  // the second request was the last
            #expect(Self.answers(sink) == 2)
            #expect(sink.outcome.text.lowercased().components(separatedBy: "connection: close").count - 1 == 1, "\(sink.outcome.text)")
            #expect(sink.outcome.error == nil)
            #expect(live.totalParks >= 1)
            #expect(upstream.count("/n/2") == 1)
        }
        // The count and age cost a parked connection 8 bytes (40, from 32).
        #expect(MemoryLayout<ParkingLot.Parked>.size == 40)
    }

    @Test func aParkedConnectionEndsAtItsIdleTimeout() async throws {
        try await Self.withParkingGateway(idle: .seconds(2)) { harness, _ in
            let live = harness.gateway.liveObjects
            let (channel, sink) = try await RawClient.open(with: harness.address, group: harness.group)
            let hung = guardAgainstHanging(channel)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("parked: \(live.counts)") { live.counts.parkedConnections == 1 }
            try await channel.closeFuture.get()
            #expect(!hung.withLockedValue { $0 }, "the parked connection was never closed")
            #expect(Self.answers(sink) == 1)
            try await eventually("released: \(live.counts)") {
                live.counts.parkedConnections == 0 && live.counts.clientHandlers == 0 && harness.gateway.openClientConnections == 0
            }
        }
    }

    @Test func aClientThatLeavesWhileParkedIsForgotten() async throws {
        try await Self.withParkingGateway { harness, _ in
            let live = harness.gateway.liveObjects
            let (channel, sink) = try await RawClient.open(with: harness.address, group: harness.group)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the answer") { Self.answers(sink) == 1 }
            try await eventually("parked: \(live.counts)") { live.counts.parkedConnections == 1 }
            try await channel.close()
            try await eventually("released: \(live.counts)") {
                live.counts.parkedConnections == 0 && live.counts.clientHandlers == 0 && harness.gateway.openClientConnections == 0
            }
        }
    }

    /// A parked connection counts under `max_connections`, and at the cap it is the
    /// first to go: a new client is served and the connection parked longest is closed
    /// (nginx reuses idle keep-alive connections so when out of `worker_connections`).
    /// One event loop, so the new connection lands where the parked ones are.
    @Test func atTheCapTheConnectionParkedLongestMakesRoom() async throws {
        try await Self.withParkingGateway(loops: 1, { $0.limits.maxConnections = 2 }) { harness, _ in
            let live = harness.gateway.liveObjects
            let (oldest, oldestSink) = try await RawClient.open(with: harness.address, group: harness.group)
            guardAgainstHanging(oldest)
            try await oldest.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the first parked: \(live.counts)") { live.counts.parkedConnections == 1 }
            let (newer, newerSink) = try await RawClient.open(with: harness.address, group: harness.group)
            guardAgainstHanging(newer)
            try await newer.writeAndFlush(ByteBuffer(string: "GET /n/2 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("both parked: \(live.counts)") { live.counts.parkedConnections == 2 }
            #expect(harness.gateway.openClientConnections == 2, "parked connections count under the cap")

            let third = try await RawClient.exchange("GET /n/3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: harness.address, group: harness.group)
            #expect(third.text.hasPrefix("HTTP/1.1 200"), "\(third.text)")
            try await oldest.closeFuture.get()  // closed by the gateway, as an idle connection is
            #expect(Self.answers(oldestSink) == 1)
            // The newer one was not touched: still parked, and served when it asks.
            try await newer.writeAndFlush(ByteBuffer(string: "GET /n/4 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the newer connection served again") { Self.answers(newerSink) == 2 }
            let stats = try await OneShot.request("GET", "/metrics", to: harness.gateway.adminAddress!, group: harness.group)
            #expect(stats.body.contains("fluxgate_connections_evicted_total 1"))
            #expect(stats.body.contains(#"fluxgate_connections_refused_total{reason="max_connections"} 0"#))
            try await newer.close()
        }
    }

    /// With two event loops, a newcomer that lands on a loop with nothing idle is still
    /// served when the other loop has a parked connection: let in above the cap, and
    /// that connection is closed to make room. The gateway gets a group of its own, so
    /// only its accepts take turns between the loops: A lands on one, B on the other,
    /// C on A's — where A is busy (its request held at the upstream).
    @Test func atTheCapAConnectionParkedOnAnotherLoopMakesRoom() async throws {
        let gatewayGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let upstream = try await TestUpstream.start(name: "a", group: group)
        let config = try makeConfig(upstreams: [upstream.url]) {
            $0.timeouts.parkAfter = .milliseconds(50)
            $0.limits.maxConnections = 2
        }
        try await withGateway(config, group: gatewayGroup) { harness in
            let live = harness.gateway.liveObjects
            let (busy, _) = try await RawClient.open(with: harness.address, group: group)
            guardAgainstHanging(busy)
            try await busy.writeAndFlush(ByteBuffer(string: "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("A's request held at the upstream") { upstream.count("/hold") == 1 }
            let (idle, idleSink) = try await RawClient.open(with: harness.address, group: group)
            guardAgainstHanging(idle)
            try await idle.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("B parked: \(live.counts)") { live.counts.parkedConnections == 1 }
            #expect(harness.gateway.openClientConnections == 2)

            let third = try await RawClient.exchange(
                "GET /n/3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", with: harness.address, group: group)
            #expect(third.text.hasPrefix("HTTP/1.1 200"), "\(third.text)")
            try await idle.closeFuture.get()  // closed by the gateway, on its own loop
            #expect(Self.answers(idleSink) == 1)
            try await eventually("back to A alone") { harness.gateway.openClientConnections == 1 }
            let stats = try await OneShot.request("GET", "/metrics", to: harness.gateway.adminAddress!, group: group)
            #expect(stats.body.contains("fluxgate_connections_evicted_total 1"))
            #expect(stats.body.contains(#"fluxgate_connections_refused_total{reason="max_connections"} 0"#))
            try await busy.close()
        }
        try await upstream.stop()
        try await group.shutdownGracefully()
        try await gatewayGroup.shutdownGracefully()
    }

    /// Only parked connections make room: an idle connection still in its channel (here
    /// with parking off) keeps its place, and the new one is refused.
    @Test func withoutParkedConnectionsTheCapRefuses() async throws {
        try await Self.withParkingGateway(loops: 1, { $0.limits.maxConnections = 1; $0.timeouts.parkAfter = .zero }) { harness, _ in
            let (channel, sink) = try await RawClient.open(with: harness.address, group: harness.group)
            guardAgainstHanging(channel)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the first answer") { Self.answers(sink) == 1 }
            let second = try await RawClient.exchange("GET /n/2 HTTP/1.1\r\nHost: h\r\n\r\n", with: harness.address, group: harness.group)
            #expect(second.text.hasPrefix("HTTP/1.1 503"), "\(second.text)")
            #expect(second.text.contains("too_many_connections"))
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/3 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the idle connection still served") { Self.answers(sink) == 2 }
            try await channel.close()
        }
    }

    @Test func theDrainClosesParkedConnections() async throws {
        // A drain that missed the parked connection would wait out this timeout and
        // return with it still open.
        try await Self.withParkingGateway({ $0.drainTimeout = .seconds(30) }) { harness, _ in
            let live = harness.gateway.liveObjects
            let (channel, _) = try await RawClient.open(with: harness.address, group: harness.group)
            let hung = guardAgainstHanging(channel)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("parked: \(live.counts)") { live.counts.parkedConnections == 1 }
            await harness.gateway.drain()
            #expect(live.openClientConnections == 0)
            try await channel.closeFuture.get()
            #expect(!hung.withLockedValue { $0 })
            #expect(harness.gateway.openClientConnections == 0)
        }
    }

    @Test func withoutParkingAnIdleConnectionStaysInItsChannel() async throws {
        try await Self.withParkingGateway({ $0.timeouts.parkAfter = .zero; $0.timeouts.clientHeader = .milliseconds(500) }) { harness, _ in
            let live = harness.gateway.liveObjects
            let (channel, sink) = try await RawClient.open(with: harness.address, group: harness.group)
            try await channel.writeAndFlush(ByteBuffer(string: "GET /n/1 HTTP/1.1\r\nHost: h\r\n\r\n"))
            try await eventually("the answer") { Self.answers(sink) == 1 }
            // A clock: a second connection whose head never ends is closed at its header
            // timeout (500 ms), ten times the 50 ms after which a parking gateway parks.
            // (On a loaded machine its write may come after the close and fail.)
            let (slow, _) = try await RawClient.open(with: harness.address, group: harness.group)
            try? await slow.writeAndFlush(ByteBuffer(string: "GET /"))
            try await slow.closeFuture.get()
            try await eventually("the slow connection released: \(live.counts)") { live.counts.clientHandlers == 1 }
            #expect(live.counts.parkedConnections == 0)
            #expect(live.totalParks == 0)
            #expect(channel.isActive)
            try await channel.close()
        }
    }

    /// Two server-side connections of a bare NIO server (reading nothing by itself),
    /// parked in a ``ParkingLot`` whose watcher is never started: the wake-up that would
    /// normally hand back a connection whose client sends again never comes, so what
    /// the lot does at the cap or at an idle timeout is all that happens. The first
    /// client has sent a request before parking; the second nothing.
    static func withTwoParked(
        idleFor idle: TimeAmount,
        _ body: (NIOLoopBound<ParkingLot>, _ revived: NIOLockedValueBox<[CInt]>, _ busy: (any Channel, RawClient.Sink),
            _ quiet: (any Channel, RawClient.Sink), _ request: String) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let accepted = NIOLockedValueBox<[any Channel]>([])
        let server = try await ServerBootstrap(group: group)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0.append(channel) }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let busy = try await RawClient.open(with: server.localAddress!, group: clients)
        try await eventually("the first accepted") { accepted.withLockedValue { $0.count } == 1 }
        let quiet = try await RawClient.open(with: server.localAddress!, group: clients)
        try await eventually("the second accepted") { accepted.withLockedValue { $0.count } == 2 }
        let (busyServer, quietServer) = accepted.withLockedValue { ($0[0], $0[1]) }
        let request = "GET /waiting HTTP/1.1\r\nHost: h\r\n\r\n"
        try await busy.0.writeAndFlush(ByteBuffer(string: request))
        let descriptor = try #require(ParkingLot.descriptor(of: busyServer))
        try await eventually("the request waiting in the server's socket") { Self.peek(descriptor) == request }

        let revived = NIOLockedValueBox<[CInt]>([])
        let watcher = try ParkWatcher()
        let lot = try await loop.submit {
            let lot = ParkingLot(eventLoop: loop, index: 0, watcher: watcher, live: LiveObjects())
            lot.revive = { parked in revived.withLockedValue { $0.append(parked.descriptor) } }
            let deadline = NIODeadline.now() + idle
            let fresh = ConnectionReuse(openedAt: .zero)
            guard lot.park(busyServer, address: "127.0.0.1", limits: nil, reuse: fresh, idleDeadline: deadline),
                lot.park(quietServer, address: "127.0.0.1", limits: nil, reuse: fresh, idleDeadline: deadline + .milliseconds(1))
            else { throw ChannelError.inappropriateOperationForState }
            return NIOLoopBound(lot, eventLoop: loop)
        }.get()
        try await busyServer.close()
        try await quietServer.close()
        try await body(lot, revived, busy, quiet, request)
        for descriptor in revived.withLockedValue({ $0 }) { _ = Glibc.close(descriptor) }
        try? await busy.0.close()
        try? await quiet.0.close()
        try await server.close()
        try await group.shutdownGracefully()
        try await clients.shutdownGracefully()
    }

    /// What waits unread in a socket (up to 1 KiB), without taking it.
    static func peek(_ descriptor: CInt) -> String {
        var bytes = [UInt8](repeating: 0, count: 1024)
        let count = recv(descriptor, &bytes, bytes.count, CInt(MSG_PEEK | MSG_DONTWAIT))
        return count > 0 ? String(decoding: bytes[0..<count], as: UTF8.self) : ""
    }

    /// At the cap, the connection parked longest is closed to make room — unless its
    /// client has just sent again: that one is handed back to be served, its request
    /// intact, and the next one is closed. (Closed, its unread request would have been
    /// answered with a reset: the client's request lost. Before 2026-12-04 it was.)
    @Test func atTheCapAParkedConnectionWithARequestWaitingIsServedNotClosed() async throws {
        try await Self.withTwoParked(idleFor: .seconds(60)) { lot, revived, busy, quiet, request in
            let evicted = try await lot.eventLoop.submit { lot.value.evictOldest() }.get()
            #expect(evicted, "the quiet connection made room")
            let handedBack = revived.withLockedValue { $0 }
            try #require(handedBack.count == 1, "the connection with a request waiting was closed")
            try await quiet.0.closeFuture.get()  // closed as an idle connection is: no reset
            #expect(quiet.1.outcome.error == nil && quiet.1.outcome.text.isEmpty)
            #expect(Self.peek(handedBack[0]) == request)
            _ = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".withCString { write(handedBack[0], $0, strlen($0)) }
            try await eventually("the answer reaches the client") { busy.1.outcome.text.hasPrefix("HTTP/1.1 204") }
            #expect(busy.0.isActive && busy.1.outcome.error == nil)
        }
    }

    /// Likewise at the idle timeout: a connection whose client sent just as its time ran
    /// out is served, not closed; the quiet one ends.
    @Test func aParkedConnectionWithARequestWaitingOutlivesItsIdleTimeout() async throws {
        try await Self.withTwoParked(idleFor: .milliseconds(20)) { _, revived, busy, quiet, request in
            try await quiet.0.closeFuture.get()
            #expect(quiet.1.outcome.error == nil)
            try await eventually("handed back") { revived.withLockedValue { $0.count } == 1 }
            let handedBack = try #require(revived.withLockedValue { $0.first }, "the connection with a request waiting was closed")
            #expect(Self.peek(handedBack) == request)
            #expect(busy.0.isActive && busy.1.outcome.error == nil)
        }
    }

    /// The drain closes parked connections but serves one whose client has just sent
    /// again (it serves a connection reading its head); the stop, which takes `revive`
    /// away first, closes all.
    @Test(arguments: [true, false]) func theDrainServesAParkedConnectionWithARequestWaiting(draining: Bool) async throws {
        try await Self.withTwoParked(idleFor: .seconds(60)) { lot, revived, busy, quiet, request in
            try await lot.eventLoop.submit {
                if !draining { lot.value.revive = nil }  // as the stop does
                lot.value.closeAll()
            }.get()
            try await quiet.0.closeFuture.get()
            #expect(quiet.1.outcome.error == nil)
            if draining {
                let handedBack = try #require(revived.withLockedValue { $0.first }, "the connection with a request waiting was closed")
                #expect(Self.peek(handedBack) == request)
                #expect(busy.0.isActive)
            } else {
                try await busy.0.closeFuture.get()
                #expect(revived.withLockedValue { $0.isEmpty })
            }
        }
    }

    @Test func theDescriptorIsReadFromASocketChannelOnly() async throws {
        let embedded = EmbeddedChannel()
        #expect(ParkingLot.descriptor(of: embedded) == nil)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: group).connect(to: server.localAddress!).get()
        let descriptor = try #require(ParkingLot.descriptor(of: client))
        #expect(ParkingLot.address(of: descriptor, peer: true) == client.remoteAddress)
        #expect(ParkingLot.address(of: descriptor, peer: false) == client.localAddress)
        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }
}
