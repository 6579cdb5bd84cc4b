import FluxgateCore
import FluxgateNIOSupport
import NIOCore

/// The listening sockets as something to hand over: systemd's socket activation and the
/// in-place upgrade (docs/OPERATIONS.md, "Restarts and upgrades without a refused
/// connection").
extension GatewayServer {
    /// The data listener's accept queue (connections the kernel completed and no loop
    /// accepted yet); nginx's `listen … backlog` is 511, HAProxy's follows `maxconn`.
    static let backlog: Int32 = 4096
    /// Connections accepted per wake-up of the listening socket, at most (the server
    /// channel's `maxMessagesPerRead`; why: ``start(sockets:)``).
    static let acceptsPerWakeup: UInt = 1024

    /// The listeners' descriptors while they are open: the data listener's, then the
    /// admin listener's (an upgrade hands them over in this order).
    public var listeningDescriptors: [CInt] {
        state.withLock { state in
            guard state.channel != nil else { return [] }
            return [state.sockets.data, state.sockets.admin].compactMap { $0 }
        }
    }

    /// Stops (true) or resumes (false) accepting on both listeners, leaving new
    /// connections in the kernel's accept queue: an upgrade holds them while the new
    /// process starts on the same sockets, so that one process accepts at a time, and
    /// resumes when the new process exits without taking over.
    public func holdAccepting(_ hold: Bool) async {
        let (data, admin) = state.withLock { ($0.channel, $0.admin) }
        for listener in [data, admin].compactMap({ $0 }) { await Self.hold(listener, hold) }
    }

    /// ``holdAccepting(_:)`` for the data listener alone (the drain's first step).
    func holdDataAccepting(_ hold: Bool) async {
        guard let data = state.withLock({ $0.channel }) else { return }
        await Self.hold(data, hold)
    }

    /// Each listener's ``AcceptPauseHandler`` holds it (an EMFILE pause ending meanwhile
    /// does not resume it).
    private static func hold(_ listener: any Channel, _ hold: Bool) async {
        try? await listener.eventLoop.submit { listener.pipeline.fireUserInboundEventTriggered(AcceptPauseHandler.Hold(held: hold)) }.get()
    }

    /// The new process of an in-place upgrade took over: before this one drains, its
    /// admin listener closes (``closeAdminListener()``) and, in cluster mode, its
    /// requests in flight move to a lease field of their own (``ClusterAgent/handOver()``).
    public func handOver() async {
        await closeAdminListener()
        await runtime.cluster?.handOver()
    }

    /// Closes the admin listener ahead of the drain: a new process that took the sockets
    /// over answers there now (this one's `/readyz` would say "draining" on a socket
    /// both share, and a load balancer reading it would take the new process out too).
    public func closeAdminListener() async {
        let admin = state.withLock { state in
            defer {
                state.admin = nil
                state.sockets.admin = nil
            }
            return state.admin
        }
        try? await admin?.close()
    }

    /// Which inherited socket serves which listener, by the address each is bound to
    /// (``ListenerMatch``). `unused` are sockets an upgrade handed over that this
    /// configuration no longer listens on (the caller closes them); a problem refuses
    /// the start.
    public static func matchInherited(
        _ inherited: InheritedListeners, config: GatewayConfig
    ) -> (sockets: ListenerSockets, unused: [CInt], problems: [String]) {
        var wanted: [(name: String, address: ListenerAddress)] = []
        var problems: [String] = []
        for (name, endpoint) in [("listen", config.listen), ("admin_listen", config.adminListen)] {
            do {
                let resolved = try AddressLookup.address(endpoint.host, port: endpoint.port, family: config.dns.family)
                if let address = ListenerAddress(resolved) { wanted.append((name, address)) }
            } catch {
                problems.append("\(name): \(StartupProblems.reason(error))")
            }
        }
        let found = inherited.descriptors.map { ($0, ListeningSocket.boundAddress($0).flatMap(ListenerAddress.init)) }
        let unusedIsProblem = inherited.source == .systemd
        let match = ListenerMatch.match(inherited: found, wanted: wanted, unusedIsProblem: unusedIsProblem)
        let sockets = ListenerSockets(data: match.assigned["listen"], admin: match.assigned["admin_listen"])
        return (sockets, match.unused, problems + match.problems)
    }
}

/// Listening sockets to use instead of binding (``GatewayServer/start(sockets:)``).
public struct ListenerSockets: Sendable, Equatable {
    public var data: CInt?
    public var admin: CInt?
    /// The process that handed them over in an in-place upgrade (it drains once this one
    /// serves); in cluster mode it holds this replica's lease until then
    /// (``ClusterAgent/start(predecessor:)``).
    public var predecessor: Int32?

    public init(data: CInt? = nil, admin: CInt? = nil, predecessor: Int32? = nil) {
        self.data = data
        self.admin = admin
        self.predecessor = predecessor
    }
}
