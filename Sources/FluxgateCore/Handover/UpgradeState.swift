/// The in-place upgrade's decisions (`SIGUSR2`, nginx's binary upgrade), apart from the
/// process spawning and the signals that carry them out.
///
/// `SIGUSR2` starts the binary at the gateway's path again, with the listening sockets
/// (``InheritedListeners``); the new process, once it serves, sends this one `SIGTERM`,
/// which — with a new process under way — is a handover: the admin listener closes at
/// once (the new process answers there; this one's `/readyz` would say "draining" on a
/// socket the two share) and the requests in flight drain as at any stop. A new
/// process that exits before it took over leaves this one serving, with the reason in
/// the log.
///
/// | phase | event | result |
/// |---|---|---|
/// | serving | SIGUSR2 | spawn (→ starting) |
/// | serving, started by systemd or from a pipe | SIGUSR2 | refused, with the reason |
/// | starting | SIGUSR2 | refused: one upgrade at a time |
/// | starting | the new process exits | the upgrade failed; serving |
/// | starting, ``takeOverDeadline`` passed | — | accept again, still starting (see ``takeOverOverdue(child:)``) |
/// | starting | SIGTERM | hand over (→ handing over) |
/// | serving | SIGTERM | drain (→ draining) |
/// | handing over | the new process exits | lost: it exited after taking over |
public struct UpgradeState: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case serving
        case starting(child: Int32)
        case handingOver(child: Int32)
        case draining
    }

    public enum Request: Sendable, Equatable {
        case spawn
        case refuse(String)
    }

    public enum Stop: Sendable, Equatable {
        /// An ordinary graceful stop.
        case drain
        /// The new process took over: close the admin listener, then drain.
        case handOver(child: Int32)
    }

    public enum ChildExit: Sendable, Equatable {
        /// The new process exited before it took over: this one keeps serving.
        case upgradeFailed
        /// The new process exited after it took over, while this one drains.
        case lostAfterHandover
        /// Not the process of an upgrade under way.
        case unrelated
    }

    public private(set) var phase: Phase = .serving
    /// Why this process cannot upgrade in place at all, or nil.
    public let unavailable: String?

    public init(unavailable: String? = nil) {
        self.unavailable = unavailable
    }

    /// Why a process cannot upgrade in place, or nil: process 1 of a container (the
    /// container ends with it, the new process too), a systemd service (`INVOCATION_ID`:
    /// systemd stops what is left in the unit when its main process exits), the embedded
    /// demo (its upstreams live in the process), a configuration that cannot be read
    /// again (`configNotReadAgain`, the reason), an executable that cannot be found.
    public static func unavailability(
        pid: Int32, environment: [String: String], runsEmbeddedDemo: Bool, configNotReadAgain: String?, executableFound: Bool
    ) -> String? {
        if pid == 1 {
            return "this process is process 1 (a container's init): the container ends when it exits, and the new process with it; "
                + "replace the container instead (a rolling update)"
        }
        if environment["INVOCATION_ID"] != nil {
            return "running under systemd, which would stop the new process with this one; restart the unit instead "
                + "(with deploy/systemd/fluxgate.socket no connection is refused across the restart)"
        }
        if runsEmbeddedDemo { return "the embedded demo upstreams run inside this process and cannot be handed over; restart instead" }
        if let configNotReadAgain { return configNotReadAgain }
        if !executableFound { return "this process's executable file cannot be found" }
        return nil
    }

    public mutating func upgradeRequested() -> Request {
        switch phase {
        case .serving:
            if let unavailable { return .refuse(unavailable) }
            return .spawn
        case .starting(let child):
            return .refuse("an upgrade is already under way (new process \(child))")
        case .handingOver, .draining:
            return .refuse("this process is draining")
        }
    }

    /// The new process was started.
    public mutating func spawned(child: Int32) {
        if phase == .serving { phase = .starting(child: child) }
    }

    /// How long the old process holds its accepts for a new process that has neither
    /// taken over nor exited. A normal start takes over in ~70 ms here (by hand,
    /// 2026-12-06); a new process that hangs (a binary that never starts serving) held
    /// every connection in the accept queue for as long as it lived — data port and
    /// admin listener both — until 2026-12-06 (found by installing a binary that sleeps).
    /// nginx and HAProxy keep the old process accepting while the new one starts; this
    /// one holds only so that one process accepts at a time (NIO's debug builds stop on
    /// an accept that finds the connection taken), and not for longer than this.
    public static let takeOverDeadline: Duration = .seconds(5)

    /// ``takeOverDeadline`` passed since `child` was started: true when it is still
    /// starting — the old process accepts again and stays in ``Phase/starting(child:)``:
    /// a second upgrade is refused until the new process exits, and if it takes over
    /// later, that is a handover as ever.
    public func takeOverOverdue(child: Int32) -> Bool {
        phase == .starting(child: child)
    }

    public mutating func childExited(_ pid: Int32) -> ChildExit {
        switch phase {
        case .starting(pid):
            phase = .serving
            return .upgradeFailed
        case .handingOver(pid):
            return .lostAfterHandover
        default:
            return .unrelated
        }
    }

    /// SIGTERM (or SIGINT): a handover while a new process is starting, else a drain.
    public mutating func stopRequested() -> Stop {
        switch phase {
        case .starting(let child):
            phase = .handingOver(child: child)
            return .handOver(child: child)
        case .handingOver(let child):
            return .handOver(child: child)
        case .serving, .draining:
            phase = .draining
            return .drain
        }
    }
}
