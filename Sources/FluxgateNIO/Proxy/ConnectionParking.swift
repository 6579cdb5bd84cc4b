import CFluxgateLinux
import Glibc
import Foundation
import FluxgateCore
import NIOConcurrencyHelpers
import NIOCore

/// Parked connections: a plain-TCP client connection idle for `timeouts.park_after`
/// leaves NIO. Its socket is duplicated, the NIO channel — with its pipeline, handler
/// and the ~2.2 KB of NIO's own per-channel objects that cannot be shrunk from outside
/// NIO (docs/PERFORMANCE.md#memory-per-idle-connection) — is closed (the duplicate keeps
/// the socket open: nothing reaches the client), and the duplicate waits in
/// ``ParkWatcher``'s epoll set. When the client sends again (or closes), the loop builds
/// a new channel around the same socket (`ClientBootstrap.withConnectedSocket`) and the
/// bytes waiting in the kernel are read as if nothing happened; when `timeouts.idle` runs
/// out first, the socket is closed as an idle connection would be. A parked connection
/// costs an entry in flat arrays (228 heap bytes per connection measured, with what its
/// closed channel left in the loop's tables) where an idle channel costs ~2.8 KiB;
/// nginx's idle keep-alive connections likewise give back their buffers.
///
/// Written here because NIO has no way to detach a socket from a channel or to watch a
/// descriptor without a channel; the watcher is a plain epoll set on its own thread.
///
/// The loop-confined half, one per event loop: a ``ParkingTable`` of the loop's parked
/// sockets (flat arrays: a parked connection allocates nothing of its own) and one NIO
/// timer, for the earliest idle deadline. An epoll registration's id names the loop
/// (top byte), the table slot and its generation, so a wake-up for a connection that
/// closed meanwhile finds nothing.
final class ParkingLot {
    /// A parked socket, its peer's address, its place in `limits.max_connections`
    /// (counted while parked) and its requests and age so far (a wake-up continues them).
    struct Parked {
        /// First: its 12 bytes and the descriptor's 4 fill one 16-byte span (40 bytes in all).
        let reuse: ConnectionReuse
        let descriptor: CInt
        let address: String
        let limits: NIOLockedValueBox<ConnectionLimits>?

        /// Bytes from the client wait in the socket: it sent again (its wake-up from the
        /// watcher is on its way). Closing it now would throw that request away with a
        /// reset. False when the client closed (nothing but the end waits) or nothing
        /// came.
        var hasInput: Bool {
            var byte: UInt8 = 0
            return recv(descriptor, &byte, 1, CInt(MSG_PEEK | MSG_DONTWAIT)) > 0
        }

        /// Closes the socket and leaves the connection count (an idle connection's end).
        func close() {
            _ = Glibc.close(descriptor)
            leaveCount()
        }

        /// Leaves `limits.max_connections` (and the per-client count).
        func leaveCount() {
            limits?.withLockedValue { $0.close(address: address) }
        }
    }

    let eventLoop: any EventLoop
    /// This loop's place in the watcher's dispatch table (the top byte of an epoll id).
    let index: Int
    let watcher: ParkWatcher
    let live: LiveObjects
    /// Builds a client connection around a socket that was parked (the gateway's
    /// pipeline); it owns the descriptor and the connection count from then on.
    var revive: ((Parked) -> Void)?
    private var table = ParkingTable<Parked>()
    /// Idle connections that cannot leave NIO (TLS state and NIOHTTP1's decoder live in
    /// the pipeline), listed once idle for `timeouts.park_after` so that they too make
    /// room at `limits.max_connections` — after every parked one, oldest first. The
    /// handler takes itself off the list when it reads again or closes.
    private var idle = ParkingTable<ProxyHandler>()
    private var task: Scheduled<Void>?
    private var taskDeadline: NIODeadline?

    init(eventLoop: any EventLoop, index: Int, watcher: ParkWatcher, live: LiveObjects) {
        precondition(index < 256)
        self.eventLoop = eventLoop
        self.index = index
        self.watcher = watcher
        self.live = live
    }

    /// Parks the connection of `channel` (idle, everything written, nothing unread in
    /// the handler), with its requests and age so far, until `idleDeadline`. False when it cannot: the channel's
    /// descriptor could not be found or duplicated, or epoll refused it — the connection
    /// then stays as it is.
    func park(
        _ channel: any Channel, address: String, limits: NIOLockedValueBox<ConnectionLimits>?, reuse: ConnectionReuse,
        idleDeadline: NIODeadline
    ) -> Bool {
        eventLoop.assertInEventLoop()
        guard let descriptor = Self.descriptor(of: channel) else { return false }
        let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return false }
        // The descriptor came from the channel's description: make sure it is this
        // connection (same local and peer address) before the channel is closed.
        guard let local = channel.localAddress, let peer = channel.remoteAddress,
            Self.address(of: copy, peer: false) == local, Self.address(of: copy, peer: true) == peer,
            let id = table.insert(Parked(reuse: reuse, descriptor: copy, address: address, limits: limits), until: MonotonicTime(idleDeadline))
        else {
            _ = close(copy)
            return false
        }
        guard watcher.watch(copy, id: UInt64(index) << 56 | id.packed) else {
            _ = table.remove(id)
            _ = close(copy)
            return false
        }
        live.parkedConnections.born()
        live.parks.born()
        arm()
        return true
    }

    /// The watcher saw these parked sockets readable (or closed): each is given back
    /// to NIO. Ids of connections that closed meanwhile match nothing.
    func wake(_ ids: [UInt64]) {
        for id in ids {
            guard let parked = table.remove(SlotID(packed: id)) else { continue }
            handBack(parked, serveIf: true)
        }
    }

    /// Closes the connection parked longest, as an idle connection is closed, so that a
    /// new one fits under `limits.max_connections` (nginx likewise closes idle keep-alive
    /// connections when it runs out of `worker_connections`). False when none is parked.
    /// One whose client has just sent again is not idle: it is served (as its wake-up
    /// would) and the next one is looked at.
    func evictOldest() -> Bool {
        eventLoop.assertInEventLoop()
        while let parked = table.removeOldest() {
            if endIdle(parked) { return true }
        }
        guard let handler = idle.removeOldest() else { return false }
        live.idleListed.died()
        handler.evictIdle()
        return true
    }

    /// Ends a parked connection that left the table as idle: closed — or, when its
    /// client sent again meanwhile (the watcher's wake-up not yet handled), given back
    /// to NIO to be served, so that the request is not lost to a reset (the race every
    /// keep-alive close has, narrowed to the bytes still on the wire). True when closed.
    private func endIdle(_ parked: Parked) -> Bool {
        handBack(parked, serveIf: parked.hasInput)
    }

    /// `parked` left the table: given back to NIO to be served when `serve` holds
    /// (asked only when something can revive it: the stop takes `revive` away), else
    /// closed. True when closed.
    @discardableResult
    private func handBack(_ parked: Parked, serveIf serve: @autoclosure () -> Bool) -> Bool {
        left(parked)
        if let revive, serve() {
            revive(parked)
            return false
        }
        parked.close()
        return true
    }

    /// Lists an idle connection that cannot park as one that may be closed to make room
    /// (``evictOldest()``); nil when the table is full.
    func listIdle(_ handler: ProxyHandler, since: MonotonicTime) -> ParkingTable<ProxyHandler>.ID? {
        eventLoop.assertInEventLoop()
        guard let id = idle.insert(handler, until: since) else { return nil }
        live.idleListed.born()
        return id
    }

    /// The listed connection read again or closed.
    func unlistIdle(_ id: ParkingTable<ProxyHandler>.ID) {
        guard idle.remove(id) != nil else { return }
        live.idleListed.died()
    }

    /// Ends every parked connection (the drain, the stop) as idle (``endIdle(_:)``): the
    /// drain serves one whose client has just sent again, as it serves a connection
    /// reading its head; the stop, which takes `revive` away first, closes all.
    func closeAll() {
        for parked in table.removeAll() { _ = endIdle(parked) }
    }

    /// `parked` is out of the table: no longer watched (before anyone else may use its
    /// descriptor) nor counted.
    private func left(_ parked: Parked) {
        watcher.unwatch(parked.descriptor)
        live.parkedConnections.died()
    }

    /// One NIO timer for the earliest idle deadline; parked connections whose
    /// `timeouts.idle` ran out are closed as idle connections are.
    private func arm() {
        guard let next = table.nextDeadline.map(NIODeadline.init) else { return }
        if let taskDeadline, taskDeadline <= next { return }
        task?.cancel()
        taskDeadline = next
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        task = eventLoop.scheduleTask(deadline: next) { bound.value.expire() }
    }

    private func expire() {
        task = nil
        taskDeadline = nil
        for parked in table.removeExpired(now: MonotonicTime(eventLoop.now)) { _ = endIdle(parked) }
        arm()
    }

    /// The descriptor of a NIO socket channel. NIO does not publish it; its
    /// description does ("SocketChannel { BaseSocket { fd=12 }, …"). A channel whose
    /// description has no `fd=` (another channel type, another NIO version) is not
    /// parked, and one whose descriptor shows other addresses than the channel's is not.
    static func descriptor(of channel: any Channel) -> CInt? {
        let description = String(describing: channel)
        guard let marker = description.range(of: "fd=") else { return nil }
        let digits = description[marker.upperBound...].prefix { $0.isASCII && $0.isNumber }
        guard let value = CInt(digits), value >= 0 else { return nil }
        return value
    }

    /// The local or peer address of a socket.
    static func address(of descriptor: CInt, peer: Bool) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(descriptor, $0, &length) : getsockname(descriptor, $0, &length)
            }
        }
        guard result == 0 else { return nil }
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: &storage) { bytes -> SocketAddress? in
            switch family {
            case AF_INET: SocketAddress(bytes.load(as: sockaddr_in.self))
            case AF_INET6: SocketAddress(bytes.load(as: sockaddr_in6.self))
            default: nil
            }
        }
    }
}

@available(*, unavailable)
extension ParkingLot: Sendable {}

/// The thread that waits on parked sockets: one epoll set for the whole gateway,
/// registrations one-shot, each naming its loop's ``ParkingLot`` and slot; a wake-up is
/// handed to that loop (`execute`), which takes the socket out of the set before
/// anything else touches it. Stopped through a pipe in the same set.
final class ParkWatcher: @unchecked Sendable {
    // @unchecked: the descriptors are set once in `init`; epoll_ctl and write are
    // thread-safe system calls; `thread` is touched by `start`/`stop` only.
    private let epoll: CInt
    private let stopPipe: (read: CInt, write: CInt)
    private static let stopID = UInt64.max
    /// Signalled when the thread has returned: after ``stop()`` nothing more is
    /// handed to a loop (which may be shut down next).
    private let exited = DispatchSemaphore(value: 0)
    private let started = NIOLockedValueBox(false)

    init() throws {
        epoll = epoll_create1(CInt(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw IOError(errnoCode: errno, reason: "epoll_create1") }
        var fds: [CInt] = [-1, -1]
        guard cfluxgate_pipe2(&fds, CInt(O_CLOEXEC | O_NONBLOCK)) == 0 else {
            let code = errno
            _ = close(epoll)
            throw IOError(errnoCode: code, reason: "pipe2")
        }
        stopPipe = (fds[0], fds[1])
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.stopID
        _ = epoll_ctl(epoll, CInt(EPOLL_CTL_ADD), stopPipe.read, &event)
    }

    deinit {
        _ = close(epoll)
        _ = close(stopPipe.read)
        _ = close(stopPipe.write)
    }

    /// Watches `descriptor` once for input, a hang-up or an error.
    func watch(_ descriptor: CInt, id: UInt64) -> Bool {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
        event.data.u64 = id
        return epoll_ctl(epoll, CInt(EPOLL_CTL_ADD), descriptor, &event) == 0
    }

    func unwatch(_ descriptor: CInt) {
        var event = epoll_event()
        _ = epoll_ctl(epoll, CInt(EPOLL_CTL_DEL), descriptor, &event)
    }

    /// Starts the thread; `dispatch[i]` receives the ids of lot `i` that woke.
    func start(dispatch: [@Sendable ([UInt64]) -> Void]) {
        started.withLockedValue { $0 = true }
        let thread = Thread { [self] in
            defer { exited.signal() }
            self.run(dispatch)
        }
        thread.name = "fluxgate-parking"
        thread.start()
    }

    /// Ends the thread and waits for it (one epoll round at most).
    func stop() {
        let running = started.withLockedValue { running in
            defer { running = false }
            return running
        }
        guard running else { return }
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
        exited.wait()
    }

    /// A parked connection's channel, pipeline and handler (~2.6 KiB in ~16 blocks)
    /// are freed on its event loop, but glibc keeps freed heap inside its arenas and
    /// returns only the top of each: after 10 000 connections went idle at once, the
    /// process kept their ~27 MiB (docs/PERFORMANCE.md#memory-per-idle-connection).
    /// `malloc_trim(0)` gives back every whole free page of every arena — on this
    /// thread, never on an event loop, but it holds each arena's lock while it walks it
    /// (0.6-2.5 ms for a 40 MB heap on this VM), and a loop that allocates meanwhile
    /// waits. So every 2 s the free heap is read (`mallinfo2`, a walk of the bins) and
    /// trimmed only when it grew by 4 MiB or more since the last trim: after a burst of
    /// connections went idle, closed or parked, not while the heap just cycles. Other
    /// allocators do this by themselves (jemalloc's decay purging); glibc does not.
    private var lastLook = ContinuousClock.now
    private var freeAfterTrim = 0
    private func trimIfWorthIt() {
        let now = ContinuousClock.now
        guard now - lastLook >= .seconds(2) else { return }
        lastLook = now
        let free = Int(clamping: mallinfo2().fordblks)
        freeAfterTrim = min(freeAfterTrim, free)
        guard free - freeAfterTrim >= 4 << 20 else { return }
        _ = malloc_trim(0)
        freeAfterTrim = Int(clamping: mallinfo2().fordblks)
    }

    private func run(_ dispatch: [@Sendable ([UInt64]) -> Void]) {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        var byLot = [[UInt64]](repeating: [], count: dispatch.count)
        while true {
            // Wakes at least once a second to give back freed heap (trimIfWorthIt).
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, CInt($0.count), 1_000) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            trimIfWorthIt()
            for event in events[0..<Int(n)] where event.data.u64 == Self.stopID { return }
            for event in events[0..<Int(n)] {
                let id = event.data.u64
                let lot = Int(id >> 56)
                if lot < byLot.count { byLot[lot].append(id & 0x00FF_FFFF_FFFF_FFFF) }
            }
            for lot in byLot.indices where !byLot[lot].isEmpty {
                dispatch[lot](byLot[lot])
                byLot[lot].removeAll(keepingCapacity: true)
            }
        }
    }
}
