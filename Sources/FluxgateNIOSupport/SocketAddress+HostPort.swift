import NIOCore

extension SocketAddress {
    /// `127.0.0.1:8080` / `[::1]:8080`, for logs (the default description is NIO's debug form).
    public var hostPort: String {
        guard let ip = ipAddress, let port else { return "\(self)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
