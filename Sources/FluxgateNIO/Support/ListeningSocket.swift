import Glibc
import NIOCore

/// The gateway's listening sockets, made here and given to NIO
/// (`ServerBootstrap.withBoundSocket`) rather than bound by NIO, so that the gateway
/// knows their descriptors: an in-place upgrade hands them to the new process
/// (``ProcessHandover``), and a socket inherited from systemd or from the process being
/// replaced is used as it is (``InheritedListeners``). NIO keeps no public way to a
/// channel's descriptor; binding here is a few system calls with the same options NIO
/// sets (`SO_REUSEADDR`, the backlog), plus close-on-exec, which NIO's sockets lack.
enum ListeningSocket {
    /// A TCP socket bound to `address` and listening, close-on-exec.
    static func open(_ address: SocketAddress, backlog: Int32) throws -> CInt {
        let family: CInt
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        case .unixDomainSocket: throw IOError(errnoCode: EAFNOSUPPORT, reason: "socket")
        }
        let descriptor = socket(family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        var one: CInt = 1
        guard setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
            let code = errno
            close(descriptor)
            throw IOError(errnoCode: code, reason: "setsockopt")
        }
        let bound = address.withSockAddr { pointer, length in bind(descriptor, pointer, socklen_t(length)) }
        guard bound == 0 else {
            let code = errno
            close(descriptor)
            throw IOError(errnoCode: code, reason: "bind")
        }
        guard listen(descriptor, backlog) == 0 else {
            let code = errno
            close(descriptor)
            throw IOError(errnoCode: code, reason: "listen")
        }
        return descriptor
    }

    /// The address a listening TCP socket is bound to, or nil when `descriptor` is not
    /// one (closed, a file, a UDP or a connected socket).
    static func boundAddress(_ descriptor: CInt) -> SocketAddress? {
        var value: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0, value == 1 else { return nil }
        guard getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &value, &length) == 0, value == CInt(SOCK_STREAM.rawValue) else { return nil }
        var storage = sockaddr_storage()
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &size) }
        }
        guard named == 0 else { return nil }
        switch CInt(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: storage) { SocketAddress($0.load(as: sockaddr_in.self)) }
        case AF_INET6:
            return withUnsafeBytes(of: storage) { SocketAddress($0.load(as: sockaddr_in6.self)) }
        default:
            return nil
        }
    }

    /// Sets the accept queue's length again: NIO listens on an adopted socket with its
    /// default backlog (128), and on a socket two processes share during an upgrade that
    /// would shorten the running process's queue too.
    static func setBacklog(_ descriptor: CInt, _ backlog: Int32) {
        _ = listen(descriptor, backlog)
    }
}

/// An address as the handover compares them: numeric host and port (a host name in the
/// file and the numeric address of an inherited socket compare equal once looked up).
struct ListenerAddress: Hashable, CustomStringConvertible {
    var host: String
    var port: Int

    init?(_ address: SocketAddress) {
        guard let host = address.ipAddress, let port = address.port else { return nil }
        self.host = host
        self.port = port
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
