/// The 67 % utilization rule (`admission`), see ``AdmissionController``.
public struct AdmissionConfig: Sendable, Equatable {
    /// Share of capacity admitted as in-flight slots, in (0, 1]. Default 0.67.
    public var targetUtilization = 0.67
    /// Longest a request may wait in the queue. Default 1s.
    public var queueTimeout: Duration = .seconds(1)
    /// `fifo` (fair) or `lifo` (freshest first: under sustained overload the requests
    /// most likely still wanted). Default fifo.
    public var queueDiscipline = AdmissionController.Discipline.fifo
    /// Standing-queue rule (``AdmissionController``): once every wait has been at least
    /// this long for `queueDelayInterval`, waits are held to it. 0 turns it off. Default 5ms.
    public var queueDelayTarget: Duration = .milliseconds(5)
    /// Default 100ms.
    public var queueDelayInterval: Duration = .milliseconds(100)
    /// Count what would be shed, shed nothing. Default false.
    public var dryRun = false
    /// Utilization (running + queued) / capacity at which each class is shed.
    /// Defaults low 0.8, normal 0.95, critical 1.0.
    public var shedAt: [Priority: Double] = [.low: 0.8, .normal: 0.95, .critical: 1.0]
    /// Route prefixes and their class; longest prefix wins, others are `normal`.
    public var routes: [RoutePriority] = []
    public init() {}

    /// The class of a request target: the longest route prefix that matches its
    /// normalised path at a segment boundary (``RequestTarget``), else normal. Without
    /// routes this costs nothing per request.
    public func priority(forTarget target: String) -> Priority {
        // The common plain path is matched in place; only one that needs normalising builds a String.
        guard !routes.isEmpty, let path = RequestTarget.routingPath(target) else { return .normal }
        return priority(forPath: path.utf8)
    }

    /// As above, on the target's bytes as they arrived: a plain origin-form path is
    /// matched in place, without making the target a `String` (an allocation beyond 15
    /// bytes).
    public func priority(forTarget target: UnsafeRawBufferPointer) -> Priority {
        guard !routes.isEmpty else { return .normal }
        if let path = RequestTarget.plainPath(target) { return priority(forPath: path) }
        return priority(forTarget: String(decoding: target, as: UTF8.self))
    }

    /// The longest route prefix matching `path` (already the routing path).
    private func priority<Path: Collection<UInt8>>(forPath path: Path) -> Priority {
        var best: RoutePriority? = nil
        for route in routes where RequestTarget.matches(prefix: route.prefix, path: path) {
            if best == nil || route.prefix.utf8.count > best!.prefix.utf8.count { best = route }
        }
        return best?.priority ?? .normal
    }

    public var controllerSettings: AdmissionController.Settings {
        .init(
            targetUtilization: targetUtilization, queueTimeout: queueTimeout, discipline: queueDiscipline, shedAt: shedAt,
            queueDelayTarget: queueDelayTarget, queueDelayInterval: queueDelayInterval)
    }
}

/// `admission.routes[i]`: requests whose path starts with `prefix` get `priority`.
public struct RoutePriority: Sendable, Equatable {
    public var prefix: String
    public var priority: Priority
    public init(prefix: String, priority: Priority) {
        self.prefix = prefix
        self.priority = priority
    }
}
