import FluxgateApp
import Glibc
import Testing

/// The in-place upgrade's new process, started for real (a shell stands in for the
/// gateway): what it inherits, and how its end is heard.
@Suite(.timeLimit(.minutes(1)))
struct ProcessHandoverTests {
    /// Runs `script` under /bin/sh as the upgrade would start a gateway; how it ended.
    func run(_ script: String, listeners: [CInt], environment: [String: String] = [:]) async throws -> String {
        let pid = try ProcessHandover.spawn(
            executable: "/bin/sh", arguments: ["sh", "-c", script], environment: environment, listeners: listeners)
        return await withCheckedContinuation { continuation in
            ProcessHandover.whenExits(pid) { continuation.resume(returning: $0) }
        }
    }

    @Test func theNewProcessGetsTheListenersFromThreeAndNoOtherDescriptor() async throws {
        // Sockets without close-on-exec, as NIO makes its client and upstream sockets.
        let listener = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        let other = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        defer {
            close(listener)
            close(other)
        }
        try #require(listener >= 0 && other > 4)
        let script = """
            [ -S /proc/self/fd/3 ] || exit 10
            [ -e /proc/self/fd/4 ] && exit 11
            [ -e /proc/self/fd/\(other) ] && exit 12
            [ "$FLUXGATE_LISTEN_FDS" = 1 ] || exit 13
            exit 0
            """
        #expect(try await run(script, listeners: [listener], environment: ["FLUXGATE_LISTEN_FDS": "1"]) == "exited with status 0")
        #expect(try await run("exit 3", listeners: []) == "exited with status 3")
    }

    @Test func theSignalsAGatewayTrapsStartAtTheirDefaults() async throws {
        // Ignored here (as a signal handler's set-up may leave it) and inherited across
        // exec unless reset: the new gateway would not even die of it before it traps it.
        let previous = signal(SIGUSR2, SIG_IGN)
        defer { signal(SIGUSR2, previous) }
        #expect(try await run("kill -USR2 $$; exit 4", listeners: []) == "was killed by signal \(SIGUSR2)")
    }

    @Test func aMissingExecutableIsAnErrorInWords() {
        #expect(throws: ProcessHandover.SpawnError.self) {
            try ProcessHandover.spawn(executable: "/nonexistent/fluxgate", arguments: ["fluxgate"], environment: [:], listeners: [])
        }
        do {
            _ = try ProcessHandover.spawn(executable: "/nonexistent/fluxgate", arguments: ["fluxgate"], environment: [:], listeners: [])
        } catch {
            #expect(error.description == "cannot start /nonexistent/fluxgate: no such file or directory")
        }
    }
}
