import FluxgateCore
import FluxgateNIO
import Glibc
import Logging
import Synchronization

/// `SIGUSR2`'s in-place upgrade of one running gateway, as nginx's binary upgrade: the
/// binary at this process's path is started again with the listening sockets; once it
/// serves it sends this process `SIGTERM`, a handover (``UpgradeState`` decides; this
/// spawns, and hears when the new process exits). docs/OPERATIONS.md, "Restarts and
/// upgrades without a refused connection".
public final class InPlaceUpgrade: Sendable {
    private let state: Mutex<UpgradeState>
    private let executable: String?
    private let arguments: [String]
    private let environment: [String: String]
    private let gateway: GatewayServer
    private let logger: Logger

    /// - Parameters:
    ///   - unavailable: why this process cannot upgrade in place
    ///     (``UpgradeState/unavailability(pid:environment:runsEmbeddedDemo:configNotReadAgain:executableFound:)``), or nil;
    ///   - executable: ``ProcessHandover/executablePath()``, read at start;
    ///   - arguments, environment: this process's, which the new one gets again.
    public init(
        gateway: GatewayServer, logger: Logger, unavailable: String?, executable: String?, arguments: [String],
        environment: [String: String]
    ) {
        self.state = Mutex(UpgradeState(unavailable: unavailable))
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.gateway = gateway
        self.logger = logger
    }

    /// SIGUSR2: starts the new process, or says why not. This process stops accepting
    /// first (new connections wait in the accept queue for the new process), and
    /// accepts again if the new process exits without taking over, or has not taken
    /// over within ``UpgradeState/takeOverDeadline``. Called from the one
    /// task that handles signals, so nothing else changes the phase meanwhile.
    public func start() async {
        let listeners = gateway.listeningDescriptors
        if case .refuse(let reason) = state.withLock({ $0.upgradeRequested() }) {
            logger.warning("SIGUSR2: no upgrade: \(reason)")
            return
        }
        guard let executable, !listeners.isEmpty else {
            logger.warning("SIGUSR2: no upgrade: the listeners are closed")
            return
        }
        await gateway.holdAccepting(true)
        let pid: pid_t
        do {
            pid = try ProcessHandover.spawn(
                executable: executable, arguments: arguments,
                environment: InheritedListeners.upgradeEnvironment(environment, count: listeners.count, pid: getpid()),
                listeners: listeners)
        } catch {
            logger.error("SIGUSR2: no upgrade: \(error)")
            await gateway.holdAccepting(false)
            return
        }
        state.withLock { $0.spawned(child: pid) }
        logger.notice(
            "SIGUSR2: started a new gateway process with the listening sockets; this one drains once it serves",
            metadata: ["pid": "\(pid)", "executable": "\(executable)", "sockets": "\(listeners.count)"])
        Task { [self] in
            try? await Task.sleep(for: UpgradeState.takeOverDeadline)
            guard state.withLock({ $0.takeOverOverdue(child: pid) }) else { return }
            logger.error(
                "upgrade: the new process has neither taken over nor exited after \(UpgradeState.takeOverDeadline); this process accepts again (if it takes over later, this one drains then; kill it to end the upgrade)",
                metadata: ["pid": "\(pid)"])
            await gateway.holdAccepting(false)
        }
        ProcessHandover.whenExits(pid) { [self] how in
            switch state.withLock({ $0.childExited(pid) }) {
            case .upgradeFailed:
                logger.error("upgrade failed: the new process \(how) before it took over; this process keeps serving", metadata: ["pid": "\(pid)"])
                Task { await gateway.holdAccepting(false) }
            case .lostAfterHandover:
                logger.critical("the new process \(how) after it took over the listening sockets", metadata: ["pid": "\(pid)"])
            case .unrelated:
                break
            }
        }
    }

    /// SIGTERM or SIGINT: a handover when a new process is starting, else a drain.
    public func stopRequested() -> UpgradeState.Stop {
        state.withLock { $0.stopRequested() }
    }
}
