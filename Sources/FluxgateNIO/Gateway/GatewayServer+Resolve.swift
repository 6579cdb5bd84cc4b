import FluxgateCore
import NIOCore
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

    /// Looks every named upstream up with `resolve` and, when addresses changed,
    /// publishes the settings with the new ones as the next version — what a reload
    /// does, with nothing else read again: the pools close their idle connections to
    /// the old address (those in use close when their exchange ends) and connect to
    /// the new one; health state, weights and capacity stay. An address in force that
    /// the name still lists stays (rotating DNS records move nothing). A failed lookup
    /// keeps the last address (logged once, until the name resolves again). Upstreams written as
    /// IP addresses are not looked up. Skipped when a reload is running or ran
    /// meanwhile (its own resolution is newer). Returns the slots whose address changed.
    @discardableResult
    func refreshAddresses(resolve: @Sendable (String, Int) async throws -> [SocketAddress]) async -> [Int] {
        let settings = runtime.settings
        var lookups: [(slot: Int, found: [SocketAddress]?)] = []
        var errors: [Int: any Error] = [:]
        for (index, slot) in settings.upstreams.enumerated() where !slot.retired && index < settings.targets.count {
            let endpoint = slot.url.endpoint
            if (try? SocketAddress(ipAddress: endpoint.host, port: endpoint.port)) != nil { continue }
            do {
                lookups.append((index, try await resolve(endpoint.host, endpoint.port)))
            } catch {
                lookups.append((index, nil))
                errors[index] = error
            }
        }
        // What to publish and log is decided by the pure `AddressRefresh`.
        let events = state.withLock { $0.addressRefresh.round(lookups) { settings.targets[$0] } }
        var changed: [Int: SocketAddress] = [:]
        for event in events {
            switch event {
            case .moved(let index, let address):
                changed[index] = address
            case .stoppedResolving(let index):
                logger.warning(
                    "upstream name does not resolve; keeping its last address",
                    metadata: [
                        "upstream": "\(settings.upstreams[index].name)", "host": "\(settings.upstreams[index].url.endpoint.host)",
                        "address": "\(settings.targets[index].hostPort)", "error": "\(errors[index].map { "\($0)" } ?? "-")",
                    ])
            case .resolvesAgain(let index):
                logger.notice("upstream name resolves again", metadata: ["upstream": "\(settings.upstreams[index].name)"])
            }
        }
        guard !changed.isEmpty else { return [] }
        return await holdingReloadLock { await publishAddresses(changed, over: settings) } ?? []
    }

    /// Publishes the moved addresses, unless a reload replaced `settings` meanwhile.
    private func publishAddresses(_ changed: [Int: SocketAddress], over settings: GatewaySettings) async -> [Int] {
        guard runtime.settings === settings else { return [] }
        let next = settings.withAddresses(changed)
        await publish(next, .unchanged(next.upstreams))
        for index in changed.keys.sorted() {
            logger.notice(
                "upstream address changed",
                metadata: [
                    "upstream": "\(next.upstreams[index].name)", "from": "\(settings.targets[index].hostPort)", "to": "\(next.targets[index].hostPort)",
                    "version": "\(next.version)",
                ])
        }
        return changed.keys.sorted()
    }
}
