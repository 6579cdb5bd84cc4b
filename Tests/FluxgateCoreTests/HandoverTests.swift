import FluxgateCore
import Testing

/// Handed-over listening sockets (systemd, an in-place upgrade) and the upgrade's phases.
struct HandoverTests {
    @Test func systemdSocketsAreTakenOnlyByTheProcessTheyAreFor() {
        let mine = InheritedListeners.read(environment: ["LISTEN_PID": "42", "LISTEN_FDS": "2"], pid: 42, parentPID: 1)
        #expect(mine.listeners == InheritedListeners(source: .systemd, descriptors: [3, 4]) && mine.warning == nil)
        let other = InheritedListeners.read(environment: ["LISTEN_PID": "41", "LISTEN_FDS": "2"], pid: 42, parentPID: 1)
        #expect(other.listeners == nil && other.warning == nil)
        let none = InheritedListeners.read(environment: ["LISTEN_FDS": "2"], pid: 42, parentPID: 1)
        #expect(none.listeners == nil && none.warning == nil)
        for bad in ["x", "0", "-1", "65"] {
            let read = InheritedListeners.read(environment: ["LISTEN_PID": "42", "LISTEN_FDS": bad], pid: 42, parentPID: 1)
            #expect(read.listeners == nil)
            #expect(read.warning == "LISTEN_FDS=\(bad) is not a count of descriptors (1 to 64): no sockets taken over from systemd")
        }
    }

    @Test func anUpgradesSocketsAreTakenOnlyByAChildOfTheUpgradingProcess() {
        let environment = ["FLUXGATE_LISTEN_FDS": "3", "FLUXGATE_UPGRADE_FROM": "7"]
        let child = InheritedListeners.read(environment: environment, pid: 42, parentPID: 7)
        #expect(child.listeners == InheritedListeners(source: .upgrade(from: 7), descriptors: [3, 4, 5]) && child.warning == nil)
        let orphan = InheritedListeners.read(environment: environment, pid: 42, parentPID: 1)
        #expect(orphan.listeners == nil)
        #expect(orphan.warning == "FLUXGATE_LISTEN_FDS is set but FLUXGATE_UPGRADE_FROM (7) is not this process's parent: no sockets taken over")
        let unnamed = InheritedListeners.read(environment: ["FLUXGATE_LISTEN_FDS": "1"], pid: 42, parentPID: 7)
        #expect(unnamed.listeners == nil && unnamed.warning?.contains("(no process)") == true)
        let bad = InheritedListeners.read(environment: ["FLUXGATE_LISTEN_FDS": "x", "FLUXGATE_UPGRADE_FROM": "7"], pid: 42, parentPID: 7)
        #expect(bad.listeners == nil && bad.warning?.hasPrefix("FLUXGATE_LISTEN_FDS=x is not a count") == true)
    }

    @Test func theNewProcessGetsItsOwnHandoverVariablesOnly() {
        let environment = [
            "PATH": "/bin", "FLUXGATE_LISTEN": "0.0.0.0:8080", "LISTEN_PID": "9", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "data",
            "FLUXGATE_LISTEN_FDS": "5", "FLUXGATE_UPGRADE_FROM": "3",
        ]
        let next = InheritedListeners.upgradeEnvironment(environment, count: 2, pid: 42)
        #expect(next == ["PATH": "/bin", "FLUXGATE_LISTEN": "0.0.0.0:8080", "FLUXGATE_LISTEN_FDS": "2", "FLUXGATE_UPGRADE_FROM": "42"])
    }

    @Test func theHandoverVariablesAreNotTakenForMisspeltOverrides() {
        let warnings = ConfigLoader.environmentWarnings(["FLUXGATE_LISTEN_FDS": "2", "FLUXGATE_UPGRADE_FROM": "7", "FLUXGATE_LISTEN_PORT": "1"])
        #expect(warnings.count == 1 && warnings[0].hasPrefix("FLUXGATE_LISTEN_PORT"))
    }

    @Test func socketsAreMatchedToListenersByAddress() {
        let wanted = [(name: "listen", address: "0.0.0.0:8080"), (name: "admin_listen", address: "127.0.0.1:9090")]
        let both = ListenerMatch.match(inherited: [(4, "127.0.0.1:9090"), (3, "0.0.0.0:8080")], wanted: wanted, unusedIsProblem: true)
        #expect(both.assigned == ["listen": 3, "admin_listen": 4] && both.unused.isEmpty && both.problems.isEmpty)
        let one = ListenerMatch.match(inherited: [(3, "0.0.0.0:8080")], wanted: wanted, unusedIsProblem: true)
        #expect(one.assigned == ["listen": 3] && one.problems.isEmpty)
        // A listener the new file moved: the upgrade's old socket is not used (the caller
        // closes it), systemd's is a mistake to name.
        let moved = ListenerMatch.match(inherited: [(3, "0.0.0.0:8081")], wanted: wanted, unusedIsProblem: false)
        #expect(moved.assigned.isEmpty && moved.unused == [3] && moved.problems.isEmpty)
        let disagree = ListenerMatch.match(inherited: [(3, "0.0.0.0:8081")], wanted: wanted, unusedIsProblem: true)
        #expect(
            disagree.problems == [
                "inherited descriptor 3 listens on 0.0.0.0:8081, which is none of this configuration's listeners (listen 0.0.0.0:8080, admin_listen 127.0.0.1:9090)"
            ])
        let notASocket = ListenerMatch.match(inherited: [(3, nil), (4, "0.0.0.0:8080")], wanted: wanted, unusedIsProblem: false)
        #expect(notASocket.assigned == ["listen": 4] && notASocket.problems == ["inherited descriptor 3 is not a listening TCP socket"])
        let twice = ListenerMatch.match(inherited: [(3, "0.0.0.0:8080"), (4, "0.0.0.0:8080")], wanted: wanted, unusedIsProblem: false)
        #expect(twice.problems == ["inherited descriptors 3 and 4 both listen on 0.0.0.0:8080"])
    }

    @Test func anUpgradeRunsOneAtATimeAndEndsInAHandoverOrBackToServing() {
        var state = UpgradeState()
        #expect(state.upgradeRequested() == .spawn)
        state.spawned(child: 100)
        #expect(state.phase == .starting(child: 100))
        #expect(state.upgradeRequested() == .refuse("an upgrade is already under way (new process 100)"))
        // The new process exits before it took over: back to serving, and again.
        #expect(state.childExited(99) == .unrelated)
        #expect(state.childExited(100) == .upgradeFailed && state.phase == .serving)
        #expect(state.upgradeRequested() == .spawn)
        state.spawned(child: 101)
        // It serves and sends SIGTERM: a handover; its later exit is a loss, named.
        #expect(state.stopRequested() == .handOver(child: 101) && state.phase == .handingOver(child: 101))
        #expect(state.upgradeRequested() == .refuse("this process is draining"))
        #expect(state.childExited(101) == .lostAfterHandover)
    }

    @Test func aNewProcessOverdueLetsTheOldOneAcceptAgainAndCanStillTakeOver() {
        var state = UpgradeState()
        state.spawned(child: 200)
        #expect(state.takeOverOverdue(child: 200))
        #expect(!state.takeOverOverdue(child: 199))
        // Still starting: a second upgrade waits for this one to end; a late take-over is a handover.
        #expect(state.upgradeRequested() == .refuse("an upgrade is already under way (new process 200)"))
        #expect(state.stopRequested() == .handOver(child: 200))
        #expect(!state.takeOverOverdue(child: 200))
        // One that exits first leaves nothing overdue.
        var other = UpgradeState()
        other.spawned(child: 300)
        #expect(other.childExited(300) == .upgradeFailed)
        #expect(!other.takeOverOverdue(child: 300))
    }

    @Test func aStopWithoutAnUpgradeIsADrainAndAnUnavailableUpgradeIsRefused() {
        var state = UpgradeState(unavailable: "running under systemd")
        #expect(state.upgradeRequested() == .refuse("running under systemd"))
        #expect(state.stopRequested() == .drain && state.phase == .draining)
        #expect(state.upgradeRequested() == .refuse("this process is draining"))
        #expect(state.stopRequested() == .drain)
        #expect(state.childExited(5) == .unrelated)
    }

    @Test func whereAnUpgradeCannotWorkItIsRefusedWithTheReason() {
        func reason(pid: Int32 = 42, environment: [String: String] = [:], demo: Bool = false, pipe: String? = nil, executable: Bool = true) -> String? {
            UpgradeState.unavailability(
                pid: pid, environment: environment, runsEmbeddedDemo: demo, configNotReadAgain: pipe, executableFound: executable)
        }
        #expect(reason() == nil)
        #expect(reason(pid: 1)?.hasPrefix("this process is process 1 (a container's init)") == true)
        #expect(reason(environment: ["INVOCATION_ID": "abc"])?.hasPrefix("running under systemd") == true)
        #expect(reason(demo: true)?.hasPrefix("the embedded demo upstreams run inside this process") == true)
        #expect(reason(pipe: "read from a pipe") == "read from a pipe")
        #expect(reason(executable: false) == "this process's executable file cannot be found")
        // Process 1 is named first: it is the one that would end everything.
        #expect(reason(pid: 1, environment: ["INVOCATION_ID": "abc"], demo: true)?.hasPrefix("this process is process 1") == true)
    }
}
