import Foundation
import FluxgateCore
import FluxgateRedis
import Logging
import NIOCore
import Synchronization

/// Cluster mode's I/O: keeps this replica's capacity lease and its stock of global
/// tokens in step with Redis (docs/SCALING.md).
///
/// Every `cluster.sync_interval` it reports demand and renews the lease
/// (``ClusterScripts/lease``), then hands the share ``LeasePlanner`` decides to the
/// ``AdmissionGate``; the gate asks it for a batch of tokens when its stock runs low
/// (``ClusterScripts/tokens``). Nothing on the data path waits for Redis: a request
/// is decided on the share and tokens already held, and when Redis does not answer
/// within `command_timeout` the planner and the shared bucket fall back
/// (`on_store_failure`). Store state changes are logged once each way. All mutable
/// state is confined to `loop`.
final class ClusterAgent: @unchecked Sendable {
    // @unchecked: `planner`, `task`, `storeUp` and `fetching` are touched only on `loop`.
    let loop: any EventLoop
    private let client: RedisClient
    private let gate: AdmissionGate
    private let config: ClusterConfig
    private let logger: Logger
    /// This replica's field in the lease hash: `cluster.replica_id`, else host name and
    /// pid; renamed once by ``handOver()``. Read by `/stats` and `/metrics` off the loop.
    var replicaID: String { identity.withLock { $0 } }
    private let identity: Mutex<String>
    private let leaseKey: String
    private let tokenKey: String
    private var planner: LeasePlanner
    private var task: RepeatedTask?
    private var storeUp: Bool?
    /// The lease field of the process this one replaced in an in-place upgrade, while it
    /// lasts (``start(predecessor:)``).
    private var predecessorField: String?
    /// With a `cluster.replica_id`: the field this process renews under once a successor
    /// has taken the id over (`<id>~<pid>`, ``renameAside()``).
    private let asideField: String?
    /// Early renewals between the scheduled ones (``RenewalPacing``).
    private var pacing: RenewalPacing
    private let published = Mutex(Status())
    let counters = Counters()

    /// What `/stats` and `/metrics` show.
    struct Status: Sendable, Equatable {
        var mode = LeasePlanner.Mode.leased
        var storeUp = false
        var replicas = 1
        var share = 0
        var demand = 0
        var lastError: String?
    }

    final class Counters: Sendable {
        let syncs = Atomic<Int>(0)
        let syncFailures = Atomic<Int>(0)
        let tokenFetches = Atomic<Int>(0)
        let tokenFetchFailures = Atomic<Int>(0)
        let tokensFetched = Atomic<Int>(0)
        /// Renewals made at once for a request that waited or was refused for capacity.
        let earlyRenewals = Atomic<Int>(0)
    }

    init(config: GatewayConfig, gate: AdmissionGate, loop: any EventLoop, logger: Logger) throws {
        let cluster = config.cluster
        self.loop = loop
        self.gate = gate
        self.config = cluster
        self.logger = logger
        self.identity = Mutex(cluster.replicaID ?? Self.defaultReplicaID())
        self.asideField = cluster.replicaID.map { $0 + Self.handedOverSuffix(ProcessInfo.processInfo.processIdentifier) }
        self.leaseKey = "\(cluster.keyPrefix):capacity"
        self.tokenKey = "\(cluster.keyPrefix):tokens"
        self.planner = LeasePlanner(settings: cluster.leaseSettings)
        self.pacing = RenewalPacing(interval: cluster.syncInterval)
        self.client = RedisClient(
            configuration: .init(
                host: cluster.redis.host, port: cluster.redis.port, username: cluster.redis.username,
                password: cluster.password ?? cluster.redis.password, database: cluster.redis.database,
                connectTimeout: .nanoseconds(cluster.connectTimeout.nanosecondsClamped),
                commandTimeout: .nanoseconds(cluster.commandTimeout.nanosecondsClamped),
                // Replicas must be back within a lease TTL of Redis (LeasePlanner.granted says why).
                maxBackoff: .nanoseconds(min(cluster.leaseTTL.nanosecondsClamped / 2, 5_000_000_000)),
                tls: try TLSContexts.redis(cluster),
                serverName: TLSContexts.serverName(for: cluster.redis.host)),
            loop: loop)
    }

    /// The host name (the pod name on Kubernetes) and the process id.
    static func defaultReplicaID(pid: Int32 = ProcessInfo.processInfo.processIdentifier) -> String {
        "\(ProcessInfo.processInfo.hostName)-\(pid)"
    }

    var status: Status { published.withLock { $0 } }

    /// Takes the first lease (or, without Redis, the static share) before returning,
    /// then renews every `sync_interval`. `predecessor`: the process this one replaces
    /// in an in-place upgrade. The first renewal takes over its demand (its clients come
    /// here now: this replica is due their share and queues for it while the
    /// predecessor's running requests still hold the slots); with a `cluster.replica_id`
    /// both have that id, and it also moves the lease the predecessor holds under it to
    /// the field the predecessor renames itself to (``handOver()``), so that the slots
    /// its running requests hold stay counted — taken over instead, this process got a
    /// share on top of them (up to a share over S until the predecessor's next renewal).
    func start(predecessor: Int32? = nil) async {
        gate.setClusterHooks(
            .init(
                fetchTokens: { [weak self] in
                    guard let self else { return }
                    self.loop.execute { self.fetchTokens() }
                },
                renewShare: { [weak self] in
                    guard let self else { return }
                    self.loop.execute { self.renewEarly() }
                }))
        let first: EventLoopFuture<Void> = loop.flatSubmit {
            // Until the first answer: the static share for the replicas expected.
            self.gate.setShare(self.planner.storeFailed(slots: self.gate.fullSlots, now: MonotonicTime.current))
            if self.gate.sharedGlobal != nil { self.fetchTokens() }
            if let predecessor {
                // Renewals name the predecessor's lease until it is gone (ClusterScripts.lease).
                self.predecessorField = self.config.replicaID.map { $0 + Self.handedOverSuffix(predecessor) }
                    ?? Self.defaultReplicaID(pid: predecessor)
            }
            return self.sync(movingAside: self.config.replicaID != nil && predecessor != nil)
        }
        try? await first.get()
        loop.execute {
            self.task = self.loop.scheduleRepeatedAsyncTask(
                initialDelay: .nanoseconds(self.config.syncInterval.nanosecondsClamped),
                delay: .nanoseconds(self.config.syncInterval.nanosecondsClamped)
            ) { _ in self.sync() }
        }
    }

    /// An in-place upgrade's new process took over and this one drains. From now on it
    /// asks for no more than it still runs (``LeasePlanner/handOver()``) and renews each
    /// time a request ends and frees its slot (``AdmissionChecks/handOver()``,
    /// ``RenewalPacing/handOver()``), so the new process — which queues for the slots it
    /// is due meanwhile — gets each within round trips to Redis. (Until 2026-12-04 the new
    /// process had no share, and so no queue, until this one's requests ended and both
    /// had renewed: 1 708-9 320 × 503 in 6 s under load, docs/results/cluster-upgrade-2026-12-04/.)
    ///
    /// With a `cluster.replica_id` set both processes have the same id: the new one
    /// renews the lease under it, so this one counts its requests in flight under a
    /// field of its own (`<id>~<pid>`, the one the new process moved its lease to:
    /// ``start(predecessor:)``) and ``stop()`` then deletes that field, not the new
    /// process's lease. The default id names the pid already.
    func handOver() async {
        let done: EventLoopFuture<Void> = loop.flatSubmit {
            self.planner.handOver()
            self.pacing.handOver()
            self.gate.handOver()
            self.renameAside()
            return self.sync()
        }
        try? await done.get()
    }

    /// With a `cluster.replica_id`: from now on this process renews under `<id>~<pid>`,
    /// the field its successor moved its lease to — at the hand-over, or at a renewal
    /// that found the lease moved already (the successor's first renewal comes before
    /// the hand-over; renewing under the id meanwhile would overwrite the successor's
    /// lease and count this one twice). Once.
    private func renameAside() {
        guard let aside = asideField else { return }
        let renamed = identity.withLock { current in
            guard current != aside else { return false }
            current = aside
            return true
        }
        guard renamed else { return }
        logger.notice(
            "cluster: the new process holds this replica's lease; requests still running here are counted under their own name",
            metadata: ["replica": "\(aside)"])
    }

    /// The suffix a handing-over process's lease field gets: `~<pid>`.
    static func handedOverSuffix(_ pid: Int32) -> String { "~\(pid)" }

    /// Stops renewing and gives the lease back, so the other replicas may take the
    /// slots at once instead of after the TTL (call after the drain).
    func stop() async {
        let done: EventLoopFuture<Void> = loop.flatSubmit {
            self.task?.cancel()
            self.task = nil
            return self.client.send(["HDEL", self.leaseKey, self.replicaID]).map { _ in () }.recover { _ in () }
                .flatMap { self.client.close() }
        }
        try? await done.get()
    }

    // MARK: On `loop`

    /// A request waited or was refused for capacity while this replica held less than
    /// `S` (``AdmissionChecks/Outcome/renewShare``): renew now, and again while that
    /// helps (``RenewalPacing``), so slots free elsewhere come within round trips to
    /// Redis instead of up to a whole interval later. (Until 2026-12-04 a burst on an
    /// idle replica was shed as `overloaded` until the next renewal: one replica alone,
    /// S = 20, holding 12 when idle, 20 clients at once got 3 848 sheds in the first
    /// 250 ms — docs/SCALING.md.)
    private func renewEarly() {
        guard task != nil else { return }  // stopped, or not started yet
        if pacing.asked() { sendEarly() }
    }

    private func sendEarly() {
        counters.earlyRenewals.wrappingAdd(1, ordering: .relaxed)
        _ = sync(scheduled: false)
    }

    private func sync(scheduled: Bool = true, movingAside: Bool = false) -> EventLoopFuture<Void> {
        if scheduled { pacing.scheduledSent() }
        let shareBefore = gate.snapshot.slots
        let (demand, slots, running) = gate.takeClusterDemand(scheduled: scheduled)
        // The lease runs from before the request left: Redis starts its TTL later than
        // that, so this replica's copy never outlives the store's.
        let sentAt = MonotonicTime.current
        let report = planner.report(demand: demand, slots: slots, now: sentAt)
        var arguments = [
            replicaID, String(report.want), String(running), String(report.demand), String(slots),
            String(config.leaseTTL.nanosecondsClamped / 1_000_000),
        ]
        // The predecessor's field; with a replica id the first renewal finds the
        // predecessor under this id and moves it to the field it is named by from then on.
        let (previous, moveTo) = movingAside ? (replicaID, predecessorField ?? "") : (predecessorField ?? "", "")
        // Whether a successor moved this lease aside (renameAside()). Not asked while this
        // process's own predecessor is still there: its successor cannot have started from
        // the same executable's upgrade yet in practice, and in one test process (one pid
        // for both) the aside name would be the predecessor's.
        let aside = predecessorField == nil ? asideField ?? "" : ""
        arguments += ["", previous, moveTo, aside]
        return client.run(ClusterScripts.lease, keys: [leaseKey], arguments: arguments).flatMapThrowing { reply in
            guard let values = reply.elements, values.count == 5, let grant = values[0].int, let replicas = values[1].int,
                let peers = values[2].elements?.compactMap({ $0.int.map(Int.init) }), peers.count == Int(replicas) - 1,
                let lease = values[3].elements?.compactMap({ $0.int.map(Int.init) }), lease.count == 0 || lease.count == 2,
                let aside = values[4].int
            else { throw RedisError.malformed("unexpected lease reply \(reply)") }
            return (Int(grant), peers, lease.count == 2 ? (demand: lease[0], held: lease[1]) : nil, aside == 1)
        }.map { (grant: Int, peers: [Int], predecessor: (demand: Int, held: Int)?, aside: Bool) in
            if predecessor == nil { self.predecessorField = nil }  // gone: drained, or its lease expired
            if aside { self.renameAside() }
            let current = self.gate.snapshot
            let share = self.planner.granted(
                grant, slots: slots, peers: peers, predecessor: predecessor, demandNow: current.inFlight + current.queued, now: sentAt)
            self.gate.setShare(share)
            self.counters.syncs.wrappingAdd(1, ordering: .relaxed)
            self.noteStore(up: true, error: nil)
            self.publish(demand: report.demand, share: share.slots(for: slots), error: nil)
        }.recover { error in
            let share = self.planner.storeFailed(slots: slots, now: MonotonicTime.current)
            self.gate.setShare(share)
            self.counters.syncFailures.wrappingAdd(1, ordering: .relaxed)
            self.noteStore(up: false, error: error)
            self.publish(demand: report.demand, share: share.slots(for: slots), error: "\(error)")
        }.always { _ in
            let now = self.gate.snapshot
            let next = self.pacing.answered(
                early: !scheduled, grew: now.slots > shareBefore, stillShort: now.queued > 0 && now.slots < now.fullSlots,
                shortOfDue: now.slots < now.dueSlots)
            guard self.task != nil else { return }
            switch next {
            case .send: self.sendEarly()
            case .listen: self.gate.listenForRenewal()
            case .retry(let delay):
                self.loop.scheduleTask(in: .nanoseconds(delay.nanosecondsClamped)) {
                    guard self.task != nil, self.pacing.retryFired() else { return }
                    self.sendEarly()
                }
            case .nothing: break
            }
        }
    }

    private func fetchTokens() {
        // The bucket's own settings: a reload that changes the global limit rebuilds it.
        guard let shared = gate.sharedGlobal else { return }
        counters.tokenFetches.wrappingAdd(1, ordering: .relaxed)
        let arguments = [String(shared.rate), String(shared.burst), String(shared.batch)]
        client.run(ClusterScripts.tokens, keys: [tokenKey], arguments: arguments).whenComplete { result in
            if case .success(let reply) = result, let values = reply.elements, values.count == 2,
                let granted = values[0].int, let wait = values[1].int
            {
                self.counters.tokensFetched.wrappingAdd(Int(granted), ordering: .relaxed)
                self.gate.tokensFetched(granted: Int(granted), wait: .milliseconds(wait), replicas: self.planner.replicas, now: MonotonicTime.current)
            } else {
                self.counters.tokenFetchFailures.wrappingAdd(1, ordering: .relaxed)
                self.gate.tokenFetchFailed(replicas: self.planner.replicas, now: MonotonicTime.current)
            }
        }
    }

    private func noteStore(up: Bool, error: (any Error)?) {
        defer { storeUp = up }
        guard storeUp != up else { return }
        if up {
            logger.notice(
                storeUp == nil ? "cluster: connected to redis; sharing capacity" : "cluster: redis is back; sharing capacity again",
                metadata: ["redis": "\(config.redis)", "replica": "\(replicaID)", "replicas": "\(planner.replicas)"])
        } else {
            logger.error(
                "cluster: redis unreachable; keeping the current lease until it expires, then on_store_failure applies",
                metadata: [
                    "redis": "\(config.redis)", "error": "\(error.map { "\($0)" } ?? "")",
                    "on_store_failure": "\(config.onStoreFailure.rawValue)", "lease_ttl": "\(DurationParser.format(config.leaseTTL))",
                    "replicas_assumed": "\(planner.replicas)",
                ])
        }
    }

    private func publish(demand: Int, share: Int, error: String?) {
        let status = Status(
            mode: planner.mode, storeUp: storeUp ?? false, replicas: planner.replicas, share: share, demand: demand,
            lastError: error)
        published.withLock { $0 = status }
    }
}
