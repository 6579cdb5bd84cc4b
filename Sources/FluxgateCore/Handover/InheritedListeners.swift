/// Listening sockets a process is given at start instead of binding its own, from one
/// of two parents, both with the descriptors numbered from 3 as `sd_listen_fds(3)` has
/// them:
///
/// - **systemd socket activation**: `LISTEN_PID` (this process) and `LISTEN_FDS` (how
///   many). systemd holds the sockets, so a restart (`systemctl restart`) never closes
///   the port: connections that arrive in between wait in the kernel's accept queue for
///   the next process instead of being refused (deploy/systemd/fluxgate.socket);
/// - **an in-place upgrade** (`SIGUSR2`, nginx's binary upgrade): the running gateway
///   starts the binary at its path again and hands it its listening sockets
///   (`FLUXGATE_LISTEN_FDS`, how many; `FLUXGATE_UPGRADE_FROM`, its process id). Both
///   processes accept from the same sockets until the old one, told by the new one once
///   it serves, has drained — no connection is refused or reset across the upgrade.
///   The variables are honoured only in a child of the process they name, so a value
///   left in an environment that reaches another process is not taken as a handover.
///
/// | environment | pid / parent | result |
/// |---|---|---|
/// | `LISTEN_PID=42 LISTEN_FDS=2` | 42 / 1 | systemd, descriptors 3, 4 |
/// | `LISTEN_PID=41 LISTEN_FDS=2` | 42 / 1 | none (meant for another process, as `sd_listen_fds` reads it) |
/// | `FLUXGATE_LISTEN_FDS=3 FLUXGATE_UPGRADE_FROM=7` | 42 / 7 | upgrade from 7, descriptors 3, 4, 5 |
/// | `FLUXGATE_LISTEN_FDS=3 FLUXGATE_UPGRADE_FROM=7` | 42 / 1 | none, and a warning (the upgrading process is gone) |
/// | `LISTEN_PID=42 LISTEN_FDS=x` | 42 / 1 | none, and a warning |
public struct InheritedListeners: Sendable, Equatable {
    /// Who handed the sockets over.
    public enum Source: Sendable, Equatable {
        case systemd
        /// The gateway process being replaced, to be told to drain once this one serves.
        case upgrade(from: Int32)
    }

    /// The first inherited descriptor (after standard input, output and error).
    public static let firstDescriptor: Int32 = 3
    /// More than any configuration has listeners for (the data and admin listeners and
    /// the embedded demo's upstreams): a larger count is a mistake, not a handover.
    public static let maxCount = 64

    /// The variables the upgrade sets in the new process's environment.
    public static let countVariable = "FLUXGATE_LISTEN_FDS"
    public static let upgradeFromVariable = "FLUXGATE_UPGRADE_FROM"
    /// Every variable read here: a process passes none of them on as it received them.
    public static let variables: Set<String> = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", countVariable, upgradeFromVariable]

    public var source: Source
    public var descriptors: [Int32]

    public init(source: Source, descriptors: [Int32]) {
        self.source = source
        self.descriptors = descriptors
    }

    /// What the environment hands this process (`pid`, child of `parentPID`), and a
    /// warning for a variable that is set but cannot be used.
    public static func read(environment: [String: String], pid: Int32, parentPID: Int32) -> (listeners: InheritedListeners?, warning: String?) {
        if let fds = environment[countVariable] {
            guard let from = environment[upgradeFromVariable].flatMap({ Int32($0) }), from == parentPID else {
                let named = environment[upgradeFromVariable] ?? "no process"
                return (nil, "\(countVariable) is set but \(upgradeFromVariable) (\(named)) is not this process's parent: no sockets taken over")
            }
            guard let count = Int(fds), (1...maxCount).contains(count) else {
                return (nil, "\(countVariable)=\(fds) is not a count of descriptors (1 to \(maxCount)): no sockets taken over")
            }
            return (InheritedListeners(source: .upgrade(from: from), descriptors: range(count)), nil)
        }
        guard let fds = environment["LISTEN_FDS"], let owner = environment["LISTEN_PID"].flatMap({ Int32($0) }), owner == pid else {
            return (nil, nil)
        }
        guard let count = Int(fds), (1...maxCount).contains(count) else {
            return (nil, "LISTEN_FDS=\(fds) is not a count of descriptors (1 to \(maxCount)): no sockets taken over from systemd")
        }
        return (InheritedListeners(source: .systemd, descriptors: range(count)), nil)
    }

    private static func range(_ count: Int) -> [Int32] {
        (0..<Int32(count)).map { firstDescriptor + $0 }
    }

    /// The environment for a process this one upgrades to: its own, without any
    /// handover variable it was started with, and with `count` sockets from `pid`.
    public static func upgradeEnvironment(_ environment: [String: String], count: Int, pid: Int32) -> [String: String] {
        var next = environment.filter { !variables.contains($0.key) }
        next[countVariable] = "\(count)"
        next[upgradeFromVariable] = "\(pid)"
        return next
    }
}

/// Which inherited socket serves which listener: matched by the address a socket is
/// bound to, so the order of the sockets does not matter (a systemd `.socket` unit may
/// list them in any order) and a listener whose address changed in the file binds anew.
///
/// | inherited (descriptor: address) | configured | result |
/// |---|---|---|
/// | 3: 0.0.0.0:8080, 4: 127.0.0.1:9090 | listen 0.0.0.0:8080, admin 127.0.0.1:9090 | both taken over |
/// | 3: 0.0.0.0:8080 | listen 0.0.0.0:8080, admin 127.0.0.1:9090 | listen taken over, admin bound |
/// | 3: 0.0.0.0:8081 | listen 0.0.0.0:8080 (upgrade) | 3 unused (closed), listen bound |
/// | 3: 0.0.0.0:8081 | listen 0.0.0.0:8080 (systemd) | a problem: the unit and the file disagree |
/// | 3: not a listening TCP socket | — | a problem |
public enum ListenerMatch {
    public struct Result<Name: Hashable>: Equatable {
        /// The inherited descriptor for each listener that has one.
        public var assigned: [Name: Int32] = [:]
        /// Inherited descriptors no listener takes.
        public var unused: [Int32] = []
        /// What refuses the start.
        public var problems: [String] = []
    }

    /// - Parameters:
    ///   - inherited: each descriptor with its bound address, or nil when it is not a
    ///     listening TCP socket;
    ///   - wanted: each listener's name (for messages: `listen`, `admin_listen`) and address;
    ///   - unusedIsProblem: true for systemd's sockets (a unit that disagrees with the
    ///     file is a mistake to name; the file's port is held by systemd and could not be
    ///     bound anyway), false for an upgrade's (a listener the new file dropped).
    public static func match<Name: Hashable & CustomStringConvertible, Address: Hashable & CustomStringConvertible>(
        inherited: [(descriptor: Int32, address: Address?)], wanted: [(name: Name, address: Address)], unusedIsProblem: Bool
    ) -> Result<Name> {
        var result = Result<Name>()
        var byAddress: [Address: Int32] = [:]
        for (descriptor, address) in inherited {
            guard let address else {
                result.problems.append("inherited descriptor \(descriptor) is not a listening TCP socket")
                continue
            }
            if byAddress[address] != nil {
                result.problems.append("inherited descriptors \(byAddress[address]!) and \(descriptor) both listen on \(address)")
                continue
            }
            byAddress[address] = descriptor
        }
        for (name, address) in wanted {
            if let descriptor = byAddress.removeValue(forKey: address) { result.assigned[name] = descriptor }
        }
        result.unused = byAddress.values.sorted()
        if unusedIsProblem {
            let listed = wanted.map { "\($0.name) \($0.address)" }.joined(separator: ", ")
            for (address, descriptor) in byAddress.sorted(by: { $0.value < $1.value }) {
                result.problems.append(
                    "inherited descriptor \(descriptor) listens on \(address), which is none of this configuration's listeners (\(listed))")
            }
        }
        return result
    }
}
