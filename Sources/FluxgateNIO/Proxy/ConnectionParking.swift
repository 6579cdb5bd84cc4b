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
/// costs a ``ParkedConnection`` and its timer entry, ~0.2 KiB, where an idle channel costs
/// ~2.8 KiB; nginx's idle keep-alive connections likewise give back their buffers.
///
/// Written here because NIO has no way to detach a socket from a channel or to watch a
/// descriptor without a channel; the watcher is a plain epoll set on its own thread.
///
/// The loop-confined half, one per event loop: the parked connections are owners in the
/// loop's ``LoopTimers`` (their idle deadline; the drain and the slot table reach them
/// there), and an epoll registration names the loop, the slot and its generation, so a
/// wake-up for a connection that closed meanwhile finds nothing.
final class ParkingLot {
    let eventLoop: any EventLoop
    /// This loop's place in the watcher's dispatch table (the top byte of an epoll id).
    let index: Int
    let watcher: ParkWatcher
    let timers: LoopTimers
    let live: LiveObjects
    /// Builds a client connection around a socket that was parked (the gateway's
    /// pipeline); it owns the descriptor and the connection count from then on.
    var revive: ((ParkedConnection.Handover) -> Void)?
    /// Connections parked on this loop now.
    private(set) var count = 0

    init(eventLoop: any EventLoop, index: Int, watcher: ParkWatcher, timers: LoopTimers, live: LiveObjects) {
        precondition(index < 256)
        self.eventLoop = eventLoop
        self.index = index
        self.watcher = watcher
        self.timers = timers
        self.live = live
    }

    /// Parks the connection of `channel` (idle, everything written, nothing unread in
    /// the handler) until `idleDeadline`. False when it cannot: the channel's
    /// descriptor could not be found or duplicated, or epoll refused it — the connection
    /// then stays as it is.
    func park(
        _ channel: any Channel, address: String, limits: NIOLockedValueBox<ConnectionLimits>?, idleDeadline: NIODeadline
    ) -> Bool {
        eventLoop.assertInEventLoop()
        guard let descriptor = Self.descriptor(of: channel) else { return false }
        let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { return false }
        // The descriptor came from the channel's description: make sure it is this
        // connection (same local and peer address) before the channel is closed.
        guard let local = channel.localAddress, let peer = channel.remoteAddress,
            Self.address(of: copy, peer: false) == local, Self.address(of: copy, peer: true) == peer
        else {
            close(copy)
            return false
        }
        let parked = ParkedConnection(descriptor: copy, address: address, limits: limits, lot: self)
        parked.timer.register(parked, in: timers)
        guard let slotID = parked.timer.packedRegistration, slotID >> 56 == 0,
            watcher.watch(copy, id: UInt64(index) << 56 | slotID)
        else {
            parked.limits = nil  // still the handler's
            parked.timer.release(from: timers)
            close(copy)
            return false
        }
        parked.timer.arm(idleDeadline, cap: { idleDeadline }, owner: parked, in: timers)
        count += 1
        live.parkedConnections.born()
        return true
    }

    /// The watcher saw these parked sockets readable (or closed): each is given back
    /// to NIO. Ids of connections that closed meanwhile match nothing.
    func wake(_ ids: [UInt64]) {
        for id in ids {
            guard let parked = timers.owner(packed: id) as? ParkedConnection, let handover = leave(parked) else { continue }
            if let revive {
                revive(handover)
            } else {
                handover.close()
            }
        }
    }

    /// Closes every parked connection (the drain, the stop): they are idle.
    func closeAll() {
        timers.forEachOwner { ($0 as? ParkedConnection).map { leave($0)?.close() } }
    }

    /// `timeouts.idle` ran out while parked: closed as an idle connection is.
    fileprivate func expired(_ parked: ParkedConnection) {
        leave(parked)?.close()
    }

    /// Takes `parked` out of the lot: no longer watched, no timer; its socket and count
    /// go to the caller.
    @discardableResult
    private func leave(_ parked: ParkedConnection) -> ParkedConnection.Handover? {
        guard parked.descriptor >= 0 else { return nil }
        watcher.unwatch(parked.descriptor)
        parked.timer.release(from: timers)
        count -= 1
        live.parkedConnections.died()
        let handover = ParkedConnection.Handover(descriptor: parked.descriptor, address: parked.address, limits: parked.limits)
        parked.descriptor = -1
        parked.limits = nil
        return handover
    }

    /// The descriptor of a NIO socket channel. NIO does not publish it; its
    /// description does ("SocketChannel { BaseSocket { fd=12 }, …"). A channel whose
    /// description has no `fd=` (another channel type, another NIO version) is not parked.
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

/// One parked client connection: its duplicated socket, its peer's address and its
/// place in `limits.max_connections` (counted while parked). Loop-confined.
final class ParkedConnection: LoopTimerOwner {
    /// What a parked connection hands to whoever takes it out of the lot.
    struct Handover {
        let descriptor: CInt
        let address: String
        let limits: NIOLockedValueBox<ConnectionLimits>?

        /// Closes the socket and leaves the connection count (an idle connection's end).
        func close() {
            _ = Glibc.close(descriptor)
            limits?.withLockedValue { $0.close(address: address) }
        }
    }

    /// -1 once it left the lot.
    fileprivate(set) var descriptor: CInt
    let address: String
    fileprivate(set) var limits: NIOLockedValueBox<ConnectionLimits>?
    var timer = LoopTimer()
    private unowned let lot: ParkingLot

    fileprivate init(descriptor: CInt, address: String, limits: NIOLockedValueBox<ConnectionLimits>?, lot: ParkingLot) {
        self.descriptor = descriptor
        self.address = address
        self.limits = limits
        self.lot = lot
    }

    func loopTimerFired(at deadline: NIODeadline) {
        guard timer.fired(at: deadline) else { return }
        lot.expired(self)
    }
}

@available(*, unavailable)
extension ParkedConnection: Sendable {}

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
        let thread = Thread { [self] in self.run(dispatch) }
        thread.name = "fluxgate-parking"
        thread.start()
    }

    /// Ends the thread (it exits at its next wake-up, which this causes).
    func stop() {
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
    }

    private func run(_ dispatch: [@Sendable ([UInt64]) -> Void]) {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        var byLot = [[UInt64]](repeating: [], count: dispatch.count)
        while true {
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, CInt($0.count), -1) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            for event in events[0..<Int(n)] {
                let id = event.data.u64
                if id == Self.stopID { return }
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
