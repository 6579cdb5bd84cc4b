import FluxgateCore
import NIOCore

/// Reload: load → validate → diff → swap, from SIGHUP, `POST /reload` or the file watch.
extension GatewayServer {
    /// Reads the configuration from its source again and applies it (SIGHUP,
    /// `POST /reload`, the file watch).
    public func reloadFromSource() async -> ReloadOutcome {
        guard let source else {
            return refuse(["no config file to reload from: the gateway runs on built-in defaults"])
        }
        if let reason = source.notReloadable { return refuse([reason], file: source.path) }
        // The file is read once this reload's turn has come (``ReloadLock``): a reload asked
        // for while another runs applies the file as it is then.
        return await waitingForReloadLock {
            // The watch learns what this reload read, each file's fingerprint taken before
            // the file is read (a write after it is still a change to the watch): the
            // configuration file's first, the certificates' once it names them.
            let configFile = ConfigSource.fingerprint(source.path)
            let config: GatewayConfig
            do throws(ConfigErrors) {
                config = try source.load()
            } catch {
                adoptRead(configFile, files: runtime.settings.config.filesReadOnReload)
                return refuse(error.errors.map(\.description), file: source.path)
            }
            adoptRead(configFile, files: config.filesReadOnReload)
            return await applyReload(config)
        }
    }

    /// SIGUSR1, as nginx and Envoy read it: the access-log file is reopened at its path
    /// (a rotation moved it) and nothing else changes; returns the path, nil when no file
    /// is written. A file that cannot be opened is logged, and lines go on to the file
    /// open before (as nginx's reopen does), or, with none, are lost and counted
    /// (`fluxgate_access_log_dropped_total{reason="write_failed"}`), until a reopen or
    /// reload that succeeds.
    public func reopenLogs() -> String? {
        let accessLog = runtime.settings.config.accessLog
        guard accessLog.enabled, accessLog.path != "-" else { return nil }
        runtime.accessLog.reconfigure(accessLog)  // the same settings: reopens the file
        return accessLog.path
    }

    /// Applies `config` without closing a connection or failing a request: new
    /// limits, upstreams (added, removed, reweighted), health settings, routes, log
    /// level and access log take effect at once; upstreams that stay keep their health
    /// state; connections take the new settings at their next request. Keys only a
    /// restart can change (`listen`, `admin_listen`, `workers`, the embedded demo)
    /// refuse the whole reload; so does anything invalid. The old configuration then
    /// stays in force.
    public func reload(_ config: GatewayConfig) async -> ReloadOutcome {
        await waitingForReloadLock { await applyReload(config) }
    }

    private func applyReload(_ config: GatewayConfig) async -> ReloadOutcome {
        let old = runtime.settings
        let prepared: (GatewaySettings, UpstreamSlots.Assignment)
        do {
            prepared = try runtime.prepare(config)
        } catch {
            switch error {
            case ReloadError.needsRestart(let keys): return refuse(["\(ReloadError.needsRestart(keys))"])
            case ReloadError.invalid(let problems): return refuse(problems)
            default: return refuse(["\(error)"])
            }
        }
        let (settings, assignment) = prepared
        await publish(settings, assignment)
        warnOverListed(settings)
        let limits = Self.makeConnectionLimits(config)
        connectionLimits.withLockedValue {
            $0.maxTotal = limits.maxTotal
            $0.maxPerClient = limits.maxPerClient
        }
        runtime.clientConnectionLimit.store(limits.maxTotal, ordering: .relaxed)
        applicationLog?.set(config.logLevel, format: config.logFormat)
        runtime.countReload(success: true)
        let changes = Self.describeChanges(from: old, to: settings, assignment: assignment)
        logger.notice(
            "configuration reloaded",
            metadata: ["version": "\(settings.version)", "changes": "\(changes.isEmpty ? "none" : changes.joined(separator: "; "))"])
        return ReloadOutcome(result: "success", version: settings.version, errors: [], changes: changes)
    }

    /// Runs `body` holding the reload lock (reloads and address refreshes publish one
    /// at a time); nil, without running it, when the lock is held (the address refresh,
    /// which runs again at its next interval).
    func holdingReloadLock<Result>(_ body: () async -> Result) async -> Result? {
        guard reloading.tryAcquire() else { return nil }
        defer { reloading.release() }
        return await body()
    }

    /// Runs `body` holding the reload lock, after the reloads before it (``ReloadLock``).
    func waitingForReloadLock<Result>(_ body: () async -> Result) async -> Result {
        await reloading.acquire()
        defer { reloading.release() }
        return await body()
    }

    /// Makes `settings` current: every loop's pool learns the slots and addresses first
    /// (on its loop), so the router never picks a slot a pool does not know; then the
    /// runtime publishes the settings. Shared by reload and the address refresh.
    func publish(_ settings: GatewaySettings, _ assignment: UpstreamSlots.Assignment) async {
        let pools = state.withLock { $0.pools }
        let perLoop = Self.perLoopConnections(settings.config, loops: max(1, pools.count))
        for pool in pools {
            try? await pool.eventLoop.submit {
                pool.value.reconfigure(
                    targets: settings.targets, tls: settings.upstreamTLS, retired: settings.upstreams.map(\.retired),
                    config: settings.config, maxConnections: perLoop)
            }.get()
        }
        runtime.install(settings, assignment, now: MonotonicTime.current)
    }

    private func refuse(_ errors: [String], file: String? = nil) -> ReloadOutcome {
        runtime.countReload(success: false)
        logger.error(
            "configuration reload refused; the running configuration stays",
            metadata: ["errors": "\(errors.joined(separator: "; "))", "file": "\(file ?? source?.path ?? "-")"])
        return ReloadOutcome(result: "error", version: runtime.settings.version, errors: errors, changes: [])
    }

    static func describeChanges(from old: GatewaySettings, to new: GatewaySettings, assignment: UpstreamSlots.Assignment) -> [String] {
        var changes = new.config.changedSections(from: old.config).filter { $0 != "upstreams" && $0 != "demo" }
        // A moved member (another address in its number) is changed, even when it starts fresh.
        let addedSlots = assignment.fresh.filter { !assignment.moved.contains($0) }
        let added = addedSlots.map { new.upstreams[$0].name }
        let removed = assignment.retired.map { new.upstreams[$0].name }
        let changed = new.upstreams.indices.filter { index in
            index < old.upstreams.count && !new.upstreams[index].retired && !addedSlots.contains(index)
                && (new.upstreams[index] != old.upstreams[index] || assignment.moved.contains(index))
        }.map { new.upstreams[$0].name }
        if !added.isEmpty { changes.append("upstreams added: \(added.joined(separator: ", "))") }
        if !removed.isEmpty { changes.append("upstreams removed: \(removed.joined(separator: ", "))") }
        if !changed.isEmpty { changes.append("upstreams changed: \(changed.joined(separator: ", "))") }
        // Files read again only when they, or their section, changed (``GatewaySettings``
        // keeps the contexts otherwise).
        if let server = new.serverTLS, server !== old.serverTLS { changes.append("tls certificate and key read again") }
        if let client = new.upstreamClientContext, let before = old.upstreamClientContext, client !== before {
            changes.append(new.config.upstreamTLS.presentsCertificate ? "upstream_tls certificate and key read again" : "upstream_tls read again")
        }
        return changes
    }

    /// Tells the watch what a reload read (``ConfigFileWatch/adopt(_:)``) and which
    /// certificates the file named.
    private func adoptRead(_ configFile: String?, files: [String]) {
        let read = ConfigSource.watchFingerprint(configFile: configFile, files: files)
        state.withLock {
            $0.fileWatch?.adopt(read)
            $0.watchedFiles = files
        }
    }

    /// The watch's look: the configuration file and the certificates it named when last
    /// read (those files are returned too, for the log line). (Those of the running
    /// configuration instead, a refused file naming others made every look a change: a
    /// refused reload every `reload.interval`.)
    func watchedFingerprintAndFiles(_ source: ConfigSource) -> (fingerprint: String, files: [String]) {
        let files = state.withLock { $0.watchedFiles }
        return (ConfigSource.watchFingerprint(configFile: ConfigSource.fingerprint(source.path), files: files), files)
    }

    /// `reload.watch`: checks the modification time, size and inode of the configuration
    /// file and of the certificates and keys it names (through symlinks:
    /// ``ConfigSource/fingerprint(_:)``) every `reload.interval` and reloads when they
    /// change and then hold still for 200 ms (an editor's save, a Kubernetes ConfigMap or
    /// Secret update swapping a symlink, a renewed certificate; a file written in place is
    /// not read half-written: ``ConfigFileWatch``).
    ///
    /// The watch runs whenever the file can be read again, looking only while
    /// `reload.watch` is on: a reload can turn it on (until 2026-12-07 a gateway started
    /// with it off never watched, whatever a reload said).
    func startWatching() {
        guard let source, source.notReloadable == nil else { return }
        let files = runtime.settings.config.filesReadOnReload
        let loaded = ConfigSource.watchFingerprint(configFile: ConfigSource.fingerprint(source.path), files: files)
        state.withLock {
            $0.fileWatch = ConfigFileWatch(loaded: loaded)
            $0.watchedFiles = files
        }
        let task = Task { [self] in
            while !Task.isCancelled {
                let interval = max(.milliseconds(100), runtime.settings.config.reload.interval)
                let wait = state.withLock { $0.fileWatch?.nextLook(interval: interval) } ?? interval
                do { try await Task.sleep(for: wait) } catch { return }
                guard runtime.settings.config.reload.watch else { continue }  // as it is after the wait
                let (fingerprint, files) = watchedFingerprintAndFiles(source)
                let now = MonotonicTime.current
                // What was loaded before this look, read under the same lock as the look.
                let (reload, before) = state.withLock { state in
                    let before = state.fileWatch?.loaded
                    return (state.fileWatch?.observe(fingerprint, now: now) ?? false, before)
                }
                guard reload else { continue }
                let changed = ConfigSource.changedFiles([source.path] + files, from: before, to: fingerprint)
                logger.info(
                    "watched file changed; reloading",
                    metadata: ["file": "\(source.path)", "changed": "\(changed.joined(separator: ", "))"])
                _ = await reloadFromSource()
            }
        }
        state.withLock { $0.watcher = task }
    }
}
