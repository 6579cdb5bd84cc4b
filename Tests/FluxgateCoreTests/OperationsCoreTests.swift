import Testing

@testable import FluxgateCore

/// The pure parts of metrics and reload: per-loop counts and their merge, stable
/// upstream slots, and the reconfiguration of health and admission state.
struct OperationsCoreTests {
    func outcome(_ end: ExchangeLifecycle.End, upstream: Int?, retries: Int = 0, queueWait: Duration = .zero, total: Duration)
        -> ExchangeLifecycle.Outcome
    {
        .init(
            end: end, upstream: upstream, retries: retries, queueWait: queueWait,
            upstreamTime: upstream == nil ? nil : total - queueWait, total: total)
    }

    @Test func trafficStatsCountsEachOutcomeOnceAndMerges() {
        var a = TrafficStats(upstreams: 1)
        a.moved(from: nil, to: 0)
        a.record(outcome(.proxied(status: 200), upstream: 0, total: .microseconds(300)), route: .normal)
        a.moved(from: 0, to: nil)
        a.record(outcome(.shed(.overloaded), upstream: nil, total: .microseconds(50)), route: .low)
        var b = TrafficStats()
        b.moved(from: nil, to: 2)  // an upstream index beyond the slots grows them
        b.retried(.timeout)  // retries count as they start, by cause
        b.record(outcome(.gatewayAnswer(status: 504), upstream: 2, retries: 1, queueWait: .milliseconds(3), total: .seconds(2)), route: .normal)
        #expect(b.upstreamSlots == 3)
        #expect(b.inFlight(2) == 1)
        a.add(b)
        #expect(a.total == 3)
        #expect(a.requests(route: .normal, statusClass: 2, upstream: 0) == 1)
        #expect(a.requests(route: .low, statusClass: 5, upstream: nil) == 1)
        #expect(a.requests(route: .normal, statusClass: 5, upstream: 2) == 1)
        #expect(a.shedCount(.overloaded) == 1)
        #expect(a.retries == 1)
        #expect(a.retriesByCause[RetryCause.timeout.rawValue] == 1)
        #expect(a.inFlight(0) == 0 && a.inFlight(2) == 1)
        #expect(a.duration.count == 3)
        #expect(a.queueWait.count == 2)  // admitted ones only
        // 50 µs ≤ 100 µs; 300 µs ≤ 500 µs; 2 s ≤ 2.5 s.
        let cumulative = a.duration.cumulative
        #expect(cumulative[0] == 1 && cumulative[2] == 2 && cumulative[LatencyHistogram.bounds.firstIndex(of: 2.5)!] == 3)
        #expect(cumulative.last == 3)
        #expect(a.duration.sumNanos == 2_000_350_000)
    }

    /// The data path's literal bucket search agrees with the exported bounds, at and
    /// just above each bound.
    @Test func latencyBucketsMatchTheirBounds() {
        for (index, bound) in LatencyHistogram.bounds.enumerated() {
            let nanos = Int64((bound * 1e9).rounded())
            #expect(LatencyHistogram.bucket(nanos) == index, "at \(bound) s")
            #expect(LatencyHistogram.bucket(nanos + 1) == index + 1, "above \(bound) s")
        }
        #expect(LatencyHistogram.bucket(0) == 0)
        #expect(LatencyHistogram.bucket(.max) == LatencyHistogram.bounds.count)
    }

    @Test func statusClasses() {
        #expect(TrafficStats.statusClass(.proxied(status: 101)) == 1)
        #expect(TrafficStats.statusClass(.shed(.clientRateLimited)) == 4)
        #expect(TrafficStats.statusClass(.shed(.queueTimeout)) == 5)
        #expect(TrafficStats.statusClass(.clientGone) == 0)
        #expect(TrafficStats.statusClass(.proxied(status: 0)) == 1)  // never seen, but bounded
    }

    func upstream(_ name: String, _ port: Int, weight: Int = 1) -> UpstreamConfig {
        UpstreamConfig(name: name, url: try! UpstreamURL.parse("http://127.0.0.1:\(port)").get(), weight: weight)
    }

    /// Slots after a reload of upstreams with one address each (member 0).
    func assign(previous: [UpstreamSlot], upstreams: [UpstreamConfig]) throws -> UpstreamSlots.Assignment {
        try UpstreamSlots.assign(previous: previous, members: upstreams.map { ($0, 0) })
    }

    @Test func upstreamSlotsStayStableAcrossReloads() throws {
        let first = try assign(previous: [], upstreams: [upstream("a", 1), upstream("b", 2)])
        #expect(first.slots.map(\.name) == ["a", "b"] && first.fresh == [0, 1] && first.retired.isEmpty)
        // b reweighted, a removed, c added.
        let second = try assign(previous: first.slots, upstreams: [upstream("b", 2, weight: 5), upstream("c", 3)])
        #expect(second.slots.map(\.name) == ["a", "b", "c"])
        #expect(second.slots.map(\.retired) == [true, false, false])
        #expect(second.slots[1].weight == 5)
        #expect(second.fresh == [2] && second.retired == [0])
        // a comes back: its old slot is revived, fresh; b moved to another port is a new slot.
        let third = try assign(previous: second.slots, upstreams: [upstream("a", 1), upstream("b", 9), upstream("c", 3)])
        #expect(third.slots.map(\.name) == ["a", "b", "c", "b"])
        #expect(third.slots.map(\.retired) == [false, true, false, false])
        #expect(third.fresh == [0, 3] && third.retired == [1])
        var slots = third.slots
        for port in 10..<UpstreamSlots.maxSlots + 6 {
            slots = try assign(previous: slots, upstreams: [upstream("x\(port)", port)]).slots
            if slots.count == UpstreamSlots.maxSlots { break }
        }
        #expect(throws: UpstreamSlots.TooManySlots.self) {
            _ = try assign(previous: slots, upstreams: [upstream("new", 60000)])
        }
    }

    /// A host name's members (``UpstreamMembers``) each have a slot, kept by member
    /// number: a member dropped is retired and revived in the same slot, so a name uses
    /// at most as many slots as it ever had members.
    @Test func membersOfANameKeepTheirSlots() throws {
        let app = UpstreamConfig(name: "app", url: try UpstreamURL.parse("http://app.svc:8080").get())
        let first = try UpstreamSlots.assign(previous: [], members: [(app, 0), (upstream("b", 2), 0), (app, 1)])
        #expect(first.slots.map(\.name) == ["app", "b", "app#2"])
        #expect(first.slots.map(\.group) == ["app", "b", "app"])
        let second = try UpstreamSlots.assign(previous: first.slots, members: [(app, 1), (upstream("b", 2), 0), (app, 2)])
        #expect(second.slots.map(\.name) == ["app", "b", "app#2", "app#3"])
        #expect(second.slots.map(\.retired) == [true, false, false, false])
        #expect(second.fresh == [3] && second.retired == [0])
        let third = try UpstreamSlots.assign(previous: second.slots, members: [(app, 0), (app, 1), (upstream("b", 2), 0)])
        #expect(third.slots.count == 4)
        #expect(third.slots.map(\.retired) == [false, false, false, true])
        #expect(third.fresh == [0] && third.retired == [3])
    }

    /// Placed members to slots and addresses (start, reload, `dns.refresh`), the table
    /// of `UpstreamSlots.assign(previous:at:placements:)`: a member whose address
    /// changed keeps its slot; with several addresses it is another replica and starts
    /// fresh, with `addresses: first` it is the name moving and keeps its state.
    @Test func aMovedMemberOfANameWithSeveralAddressesStartsFresh() throws {
        var app = UpstreamConfig(name: "app", url: try UpstreamURL.parse("http://app.svc:8080").get())
        var one = UpstreamConfig(name: "vip", url: try UpstreamURL.parse("http://vip.svc:8080").get())
        one.maxAddresses = 1
        let (start, at) = try UpstreamSlots.assign(
            previous: [], at: [String](), placements: [(app, [0: "10.0.0.1", 1: "10.0.0.2"]), (one, [0: "10.0.1.1"])])
        #expect(start.slots.map(\.name) == ["app", "app#2", "vip"])
        #expect(at == ["10.0.0.1", "10.0.0.2", "10.0.1.1"])
        #expect(start.fresh == [0, 1, 2] && start.moved.isEmpty && start.retired.isEmpty)

        // Pod 10.0.0.1 replaced by 10.0.0.3 in the same number; the VIP renumbered.
        let (next, nextAt) = try UpstreamSlots.assign(
            previous: start.slots, at: at, placements: [(app, [0: "10.0.0.3", 1: "10.0.0.2"]), (one, [0: "10.0.1.2"])])
        #expect(nextAt == ["10.0.0.3", "10.0.0.2", "10.0.1.2"])
        #expect(next.moved == [0, 2])
        #expect(next.fresh == [0])  // the replica; the VIP keeps its state
        #expect(next.retired.isEmpty)

        // app#2's pod leaves: retired, keeping its last address; nothing moved.
        let (third, thirdAt) = try UpstreamSlots.assign(
            previous: next.slots, at: nextAt, placements: [(app, [0: "10.0.0.3"]), (one, [0: "10.0.1.2"])])
        #expect(thirdAt == ["10.0.0.3", "10.0.0.2", "10.0.1.2"])
        #expect(third.retired == [1] && third.fresh.isEmpty && third.moved.isEmpty)

        // It comes back at another address: revived (fresh), not moved (it was not live).
        app.weight = 2  // a kept member's settings change with it
        let (fourth, fourthAt) = try UpstreamSlots.assign(
            previous: third.slots, at: thirdAt, placements: [(app, [0: "10.0.0.3", 1: "10.0.0.4"]), (one, [0: "10.0.1.2"])])
        #expect(fourthAt == ["10.0.0.3", "10.0.0.4", "10.0.1.2"])
        #expect(fourth.fresh == [1] && fourth.moved.isEmpty && fourth.retired.isEmpty)
        #expect(fourth.slots.map(\.weight) == [2, 2, 1])
    }

    @Test func healthBoardReconfigureKeepsStateOfKeptSlots() {
        var policy = HealthPolicy()
        policy.fall = 1
        var board = HealthBoard(count: 2, policy: policy)
        _ = board.probeFailed(1, .timeout, now: .zero)
        #expect(!board[1].isReady)
        board.reconfigure(policy: policy, retired: [true, false, false], fresh: [2])
        #expect(!board[1].isReady)  // kept: still down
        #expect(board[2].isReady)  // new: starts as at start-up
        let plan = board.plan(now: .zero)
        #expect(plan.routed == [false, false, true])
    }

    @Test func admissionControllerUpdateKeepsInFlightAndResizes() {
        var controller = AdmissionController(capacity: 10, settings: .init(targetUtilization: 0.5, queueTimeout: .seconds(60)))
        for id in 0..<7 { _ = controller.arrive(id: id, priority: .normal, now: .zero) }
        #expect(controller.inFlight == 5 && controller.queued == 2)
        let (admitted, rejected) = controller.update(settings: .init(targetUtilization: 0.8, queueTimeout: .seconds(60)))
        #expect(admitted == [5, 6] && rejected.isEmpty)
        #expect(controller.slots == 8 && controller.inFlight == 7)
    }

    /// `/proc/self/stat` fields counted from the last parenthesis: a command name may hold
    /// spaces and parentheses.
    @Test func processStatIsParsedAfterTheCommandName() {
        // pid (comm) state ppid … utime(14) stime(15) … starttime(22) vsize(23) rss(24) …
        var fields = (3...52).map { String($0 * 10) }
        fields[0] = "S"
        let line = "4242 (fluxgate (x) y) " + fields.joined(separator: " ")
        let stat = ProcessStat.parse(line)
        #expect(stat == ProcessStat(cpuTicks: 140 + 150, startTicks: 220, virtualBytes: 230, residentPages: 240))
        #expect(ProcessStat.parse("4242 (short) S 1 2 3") == nil, "too few fields")
        #expect(ProcessStat.parse("no parenthesis") == nil)
        #expect(ProcessStat.bootTime(fromProcStat: "cpu  1 2 3\nbtime 1764633600\nprocesses 9\n") == 1_764_633_600)
        #expect(ProcessStat.bootTime(fromProcStat: "cpu  1 2 3\n") == nil)
    }
}
