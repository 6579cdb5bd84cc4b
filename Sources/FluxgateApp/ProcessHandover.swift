import Dispatch
import FluxgateCore
import Glibc

/// Starting the new process of an in-place upgrade, and hearing when it exits.
///
/// `posix_spawn` rather than Foundation's `Process`: the new process must receive the
/// listening sockets at descriptors 3, 4, … (and nothing else: NIO opens its sockets
/// without close-on-exec, so every client and upstream connection would otherwise be
/// inherited and held open by the new process after this one closed it), which takes
/// file actions `Process` does not offer.
public enum ProcessHandover {
    /// This process's executable, as a path: read at start, because once an upgrade
    /// installed a new binary at the path, `/proc/self/exe` names the old, deleted file.
    public static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let path = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasSuffix(" (deleted)") ? nil : path
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `executable` with `arguments` (the first is the program's name) and
    /// `environment`, its standard input, output and error this process's, `listeners`
    /// at descriptors 3, 4, … and no other descriptor; the signals a gateway traps start
    /// at their defaults, unblocked. Returns its process id.
    public static func spawn(executable: String, arguments: [String], environment: [String: String], listeners: [CInt]) throws(SpawnError) -> pid_t {
        let first = InheritedListeners.firstDescriptor
        let count = CInt(listeners.count)
        // Copies above the target range first, so that placing one never overwrites
        // another that happens to sit at a target number.
        var copies: [CInt] = []
        defer { for copy in copies { close(copy) } }
        for descriptor in listeners {
            let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, first + count)
            guard copy >= 0 else { throw SpawnError(description: "cannot copy listening socket \(descriptor): \(errnoWords(errno))") }
            copies.append(copy)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (index, copy) in copies.enumerated() {
            // dup2 onto another number clears close-on-exec on the target.
            posix_spawn_file_actions_adddup2(&actions, copy, first + CInt(index))
        }
        guard let closeFrom = addCloseFrom else {
            throw SpawnError(description: "this C library cannot close a new process's other descriptors (glibc 2.34 or later can)")
        }
        _ = closeFrom(&actions, first + count)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnError(description: "cannot start \(executable): \(errnoWords(result))") }
        return pid
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later): every other
    /// descriptor closed in the new process, however many this one opens meanwhile.
    /// Looked up at run time: Swift's Glibc module does not declare it.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, CInt) -> CInt)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, CInt) -> CInt).self)
    }()

    /// Calls `exited` with a description of how `pid` (a child of this process) ended,
    /// once it has (`waitpid` on a thread of its own).
    public static func whenExits(_ pid: pid_t, _ exited: @escaping @Sendable (String) -> Void) {
        // Blocks one of Dispatch's threads for as long as the child lives (one at a time).
        DispatchQueue.global().async {
            var status: CInt = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
            exited(result < 0 ? "could not be waited for: \(errnoWords(errno))" : describe(status: status))
        }
    }

    /// `exited with status 2`, `was killed by signal 9`.
    public static func describe(status: CInt) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited with status \((status >> 8) & 0xff)" }
        return "was killed by signal \(signal)"
    }
}
