import FluxgateCore
import FluxgateNIOSupport
import NIOCore
import Logging
import NIOPosix

/// `dns.refresh`: upstream host names looked up again while running, so an upstream
/// whose name comes to point elsewhere is followed without a reload (Envoy's
/// `STRICT_DNS` clusters and HAProxy's `resolvers` do the same; open-source nginx
/// resolves only at start, which `refresh: 0s` keeps).
extension GatewayServer {
    /// Every `dns.refresh` (read again each round, so a reload changes it), looks the
    /// named upstreams up again. Cancelled by ``stop()``.
    func startResolving() {
        let task = Task { [self] in
            while !Task.isCancelled {
                let refresh = runtime.settings.config.dns.refresh
                do { try await Task.sleep(for: refresh == .zero ? .seconds(1) : refresh) } catch { return }
                guard runtime.settings.config.dns.refresh != .zero else { continue }
                let family = runtime.settings.config.dns.family
                await refreshAddresses { host, port in try await Self.systemResolve(host, port, family) }
            }
        }
        state.withLock { $0.resolver = task }
    }

    /// The C library's resolver (what start and reload use), on NIO's thread pool for
    /// blocking work so a slow DNS server never holds an event loop or a task thread:
    /// the name's usable addresses, best first (`dns.family`).
    @Sendable static func systemResolve(_ host: String, _ port: Int, _ family: AddressFamilyPreference) async throws -> [SocketAddress] {
        try await NIOThreadPool.singleton.runIfActive { try AddressLookup.candidates(host, port: port, family: family) }
    }

    /// Looks every named upstream up with `resolve` and, when its members changed — an
    /// address moved, a name gained or lost addresses (``UpstreamMembers``) — publishes
    /// the settings with the new members as the next version: what a reload does, with
    /// nothing else read again. The pools close their idle connections to an address no
    /// longer served (those in use close when their exchange ends) and connect to the
    /// new one; a member keeps its slot, health state, weight and capacity while its
    /// number stays; an added member starts as a new upstream does, a dropped one is
    /// retired (its requests in flight finish). An address in force that the name still
    /// lists stays (rotating DNS records move nothing). A failed lookup keeps the
    /// members (logged once, until the name resolves again). Upstreams written as IP
    /// addresses are not looked up. Skipped when a reload is running or ran meanwhile
    /// (its own resolution is newer). Returns the slots whose address changed, added or
    /// retired.
    @discardableResult
    func refreshAddresses(resolve: @Sendable (String, Int) async throws -> [SocketAddress]) async -> [Int] {
        let settings = runtime.settings
        let upstreams = settings.config.effectiveUpstreams
        var lookups: [AddressRefresh<String, SocketAddress>.Lookup] = []
        var errors: [String: any Error] = [:]
        for upstream in upstreams {
            let endpoint = upstream.url.endpoint
            if (try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port)) != nil { continue }
            let inForce = settings.members(of: upstream)
            guard !inForce.isEmpty else { continue }
            var found: [SocketAddress]? = nil
            do { found = try await resolve(endpoint.host, endpoint.port) } catch { errors[upstream.name] = error }
            lookups.append(.init(key: upstream.name, found: found, inForce: inForce, limit: upstream.maxAddresses))
        }
        // What to publish and log is decided by the pure `AddressRefresh`.
        let events = state.withLock { $0.addressRefresh.round(lookups) }
        var placed: [String: [Int: SocketAddress]] = [:]
        for event in events {
            switch event {
            case .placed(let name, let members):
                placed[name] = members
            case .stoppedResolving(let name):
                guard let upstream = upstreams.first(where: { $0.name == name }) else { continue }
                logger.warning(
                    "upstream name does not resolve; keeping its last addresses",
                    metadata: [
                        "upstream": "\(name)", "host": "\(upstream.url.endpoint.host)",
                        "addresses": "\(settings.members(of: upstream).sorted { $0.key < $1.key }.map(\.value.hostPort).joined(separator: ","))",
                        "error": "\(errors[name].map { "\($0)" } ?? "-")",
                    ])
            case .resolvesAgain(let name):
                logger.notice("upstream name resolves again", metadata: ["upstream": "\(name)"])
            case .listsMoreThanAllowed(let name, let listed):
                warnListsMoreThanAllowed(name, listed: listed, limit: upstreams.first { $0.name == name }?.maxAddresses ?? 0)
            }
        }
        guard !placed.isEmpty else { return [] }
        return await holdingReloadLock { await publishMembers(placed, over: settings) } ?? []
    }

    /// Warns of the upstreams whose names listed more addresses than they take when
    /// `settings` were resolved (start, reload); the refresh then says so again only
    /// after they fit in between.
    func warnOverListed(_ settings: GatewaySettings) {
        guard !settings.overListed.isEmpty else { return }
        for (name, listed) in settings.overListed.sorted(by: { $0.key < $1.key }) {
            let limit = settings.config.effectiveUpstreams.first { $0.name == name }?.maxAddresses ?? 0
            warnListsMoreThanAllowed(name, listed: listed, limit: limit)
        }
        state.withLock { $0.addressRefresh.warnedListsMoreThanAllowed(settings.overListed.keys) }
    }

    private func warnListsMoreThanAllowed(_ name: String, listed: Int, limit: Int) {
        logger.warning(
            "upstream name lists more addresses than it takes; the others get no traffic (raise upstreams[].addresses)",
            metadata: ["upstream": "\(name)", "listed": "\(listed)", "addresses": "\(limit)"])
    }

    /// Publishes the upstreams' new members, unless a reload replaced `settings` meanwhile.
    private func publishMembers(_ placed: [String: [Int: SocketAddress]], over settings: GatewaySettings) async -> [Int] {
        guard runtime.settings === settings else { return [] }
        let placements = settings.config.effectiveUpstreams.map { ($0, placed[$0.name] ?? settings.members(of: $0)) }
        let (assignment, targets): (UpstreamSlots.Assignment, [SocketAddress])
        do {
            (assignment, targets) = try UpstreamSlots.assign(previous: settings.upstreams, at: settings.targets, placements: placements)
        } catch {
            logger.error("cannot add an upstream name's new addresses; keeping its members", metadata: ["error": "\(error)"])
            return []
        }
        let next = settings.withMembers(assignment.slots, targets: targets)
        await publish(next, assignment)
        var changed: [Int] = []
        for index in next.upstreams.indices {
            let slot = next.upstreams[index]
            let metadata: Logger.Metadata = ["upstream": "\(slot.name)", "address": "\(next.targets[index].hostPort)", "version": "\(next.version)"]
            if assignment.moved.contains(index) {
                // With several addresses the member is another replica now: its health starts over.
                logger.notice(
                    "upstream address changed",
                    metadata: [
                        "upstream": "\(slot.name)", "from": "\(settings.targets[index].hostPort)", "to": "\(next.targets[index].hostPort)",
                        "health": "\(assignment.fresh.contains(index) ? "fresh" : "kept")", "version": "\(next.version)",
                    ])
            } else if assignment.fresh.contains(index) {
                logger.notice("upstream name has a new address: member added", metadata: metadata)
            } else if assignment.retired.contains(index) {
                logger.notice("upstream name no longer lists the address: member retired", metadata: metadata)
            } else {
                continue
            }
            changed.append(index)
        }
        return changed
    }
}
