import Foundation
import NIOConcurrencyHelpers
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway `redis-server` for tests: its own port, no persistence, stopped by
/// ``stop()`` (and killed with the test process if that dies first: it runs in the
/// foreground as a child).
///
/// `swift test` needs nothing but the toolchain: tests that use this are skipped when
/// `redis-server` is not installed — unless `FLUXGATE_REQUIRE_REDIS=1` is set, as
/// `.ci/run` does after installing it, so CI cannot skip them silently.
/// glibc 2.34+ has it; Swift's Glibc module does not import it.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func spawnActionsCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32

public final class RedisServer: @unchecked Sendable {
    public let port: Int
    private let pid: pid_t
    private let stopped = NIOLockedValueBox(false)

    public static var executable: String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") + ["/usr/bin", "/usr/sbin"]
        return paths.map { "\($0)/redis-server" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Whether tests that need a real Redis run here (see the type's comment).
    public static var enabled: Bool {
        executable != nil || ProcessInfo.processInfo.environment["FLUXGATE_REQUIRE_REDIS"] == "1"
    }

    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts a server and returns once it accepts connections (it says so on stdout).
    /// Spawned with `posix_spawn` rather than Foundation's `Process`, whose
    /// `waitUntilExit` spins a core off the main thread on Linux.
    /// `tls`: PEM certificate and key; the server then speaks only TLS on `port`.
    /// `clientCA`: with `tls`, the server asks clients for a certificate issued by these
    /// PEM CAs (redis-server's own default once TLS is on); without it, it asks for none.
    public init(
        port requested: Int? = nil, password: String? = nil, tls: (certificate: String, key: String)? = nil, clientCA: String? = nil
    ) throws {
        guard let executable = Self.executable else {
            throw Unavailable(description: "redis-server is not installed (FLUXGATE_REQUIRE_REDIS=1 is set)")
        }
        let port = try requested ?? Self.freePort()
        self.port = port
        let listen = tls.map {
            ["--port", "0", "--tls-port", String(port), "--tls-cert-file", $0.certificate, "--tls-key-file", $0.key]
                + (clientCA.map { ["--tls-auth-clients", "yes", "--tls-ca-cert-file", $0] } ?? ["--tls-auth-clients", "no"])
        } ?? ["--port", String(port)]
        var arguments = [executable] + listen + [
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--loglevel", "notice",
        ]
        if let password { arguments += ["--requirepass", password] }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Unavailable(description: "pipe() failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        // Nothing else of this process may leak into the server: a listening socket it
        // inherited would stay open after the test closed it (a "dead" port that
        // accepts) — tests run in parallel, so any descriptor may be open right now.
        _ = spawnActionsCloseFrom(&actions, 3)
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, executable, &actions, nil, &cArguments, environ)
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            throw Unavailable(description: "posix_spawn redis-server failed: \(spawned)")
        }
        pid = child
        // Wait for the readiness line; the pipe ends if the server exits instead.
        let output = fds[0]
        var seen: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: seen, as: UTF8.self).contains("Ready to accept connections") {
            let count = read(output, &chunk, chunk.count)
            if count <= 0 {
                close(output)
                var status: Int32 = 0
                waitpid(child, &status, 0)
                throw Unavailable(description: "redis-server exited: \(String(decoding: seen, as: UTF8.self))")
            }
            seen += chunk[0..<count]
        }
        // Keep draining its output so the server never blocks on a full pipe.
        Thread.detachNewThread {
            var sink = [UInt8](repeating: 0, count: 4096)
            while read(output, &sink, sink.count) > 0 {}
            close(output)
        }
    }

    /// Stops the server (SIGKILL: nothing of it is kept) and reaps it.
    public func stop() {
        let first = stopped.withLockedValue { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    deinit { stop() }
    /// A port nothing listens on now, below the kernel's ephemeral range (32768 and
    /// up): other tests take "dead" ports from that range and expect them to stay
    /// dead, so a server started here must never land on one.
    public static func freePort() throws -> Int {
        let group = MultiThreadedEventLoopGroup.singleton
        for _ in 0..<100 {
            let port = Int.random(in: 20_000..<30_000)
            guard let channel = try? ServerBootstrap(group: group).bind(host: "127.0.0.1", port: port).wait() else { continue }
            try channel.close().wait()
            return port
        }
        throw Unavailable(description: "no free port in 20000..<30000")
    }
}
