import FluxgateCore
import Logging
import NIOCore
import NIOPosix

/// Graceful shutdown: the drain and the stop.
extension GatewayServer {
    /// Graceful drain: stop accepting, close idle client connections, let each busy one
    /// finish its current request (answered with `Connection: close`) and each tunnel
    /// (WebSocket) run on, for up to `drain_timeout`; `/readyz` answers 503 from the
    /// start. Returns when every client connection and tunnel closed or the timeout
    /// passed (what is left is closed by ``stop()``). Until 2026-12-05 tunnels were not
    /// waited for: every WebSocket was cut at once at `SIGTERM` or an upgrade's handover,
    /// where nginx's old workers and HAProxy's soft stop keep them open until their
    /// shutdown timeouts.
    public func drain() async {
        let (listener, scratches) = state.withLock { ($0.channel, $0.scratches) }
        guard let listener else { return }
        let timeout = runtime.settings.config.drainTimeout
        runtime.startDraining()
        let open = { [runtime] in (connections: runtime.live.openClientConnections, tunnels: runtime.tunnels.load(ordering: .relaxed)) }
        let atStart = (open: open(), gate: runtime.gate.snapshot)
        let requestsAtStart = runtime.live.totalExchanges
        logger.notice(
            "draining: stopped accepting; finishing requests in flight",
            metadata: [
                "connections": "\(atStart.open.connections)", "tunnels": "\(atStart.open.tunnels)",
                "in_flight": "\(atStart.gate.inFlight)", "queued": "\(atStart.gate.queued)",
                "drain_timeout": "\(DurationParser.format(timeout))",
            ])
        let started = ContinuousClock.now
        // Tell every open connection, on its own loop, and stop accepting. (NIOExtras'
        // ServerQuiescingHelper did this until 2026-12-01; it kept each connection in a
        // dictionary with a close callback, ~120 bytes per idle connection, where the
        // loops' timer slot tables already list them.) A connection accepted before the
        // listener is closed finds the runtime draining when it opens.
        for scratch in scratches {
            scratch.eventLoop.execute {
                scratch.value.parking?.closeAll()
                scratch.value.timers.forEachOwner { ($0 as? ProxyHandler)?.drain() }
            }
        }
        // Stop accepting, and let the connections accepted just before finish joining
        // their loops: NIO closes, silently, a connection whose registration comes back
        // to the listener's loop (a hop between loops) after the listener closed — a
        // client whose request was already sent then sees its connection drop. Each hop
        // is a task queued behind the ones already there, so a round trip through every
        // loop and then the listener's own lets them pass. (Found by a drain test that
        // failed once in ~50 runs.) Connections still in the accept queue at the close
        // are reset by the kernel: an upgrade hands the queue to the new process instead.
        await holdDataAccepting(true)
        for loop in group.makeIterator() { try? await loop.submit {}.get() }
        try? await listener.eventLoop.submit {}.get()
        try? await listener.close()
        // Polled: the drain is rare and its end needs no precision finer than this.
        var left = open()
        while left != (0, 0) && ContinuousClock.now - started < timeout {
            try? await Task.sleep(for: .milliseconds(20))
            left = open()
        }
        let finished = left == (0, 0)
        let elapsed = ContinuousClock.now - started
        let metadata: Logger.Metadata = [
            "seconds": "\(Double(elapsed.nanosecondsClamped / 1_000_000) / 1000)", "connections_left": "\(left.connections)",
            "tunnels_left": "\(left.tunnels)",
            "requests_during_drain": "\(runtime.live.totalExchanges - requestsAtStart)",
        ]
        if finished {
            logger.notice("drained: every client connection and tunnel closed", metadata: metadata)
        } else {
            logger.warning("drain timeout: closing the connections still open", metadata: metadata)
        }
    }

    /// Closes the listeners, the health checker, the access log and the idle upstream connections.
    public func stop() async throws {
        let (channel, admin, pools, rotations, watcher, scratches, parkWatcher) = state.withLock { state in
            state.resolver?.cancel()
            state.resolver = nil
            defer {
                state.channel = nil
                state.admin = nil
                state.scratches = []
                state.rotations = []
                state.watcher = nil
                state.parkWatcher = nil
            }
            return (state.channel, state.admin, state.pools, state.rotations, state.watcher, state.scratches, state.parkWatcher)
        }
        watcher?.cancel()
        parkWatcher?.stop()
        for scratch in scratches {
            try? await scratch.eventLoop.submit {
                scratch.value.parking?.revive = nil  // nothing is served any more: every parked connection closes
                scratch.value.parking?.closeAll()
            }.get()
        }
        for rotation in rotations { rotation.cancel() }
        try? await channel?.close()
        try? await admin?.close()
        await healthChecker.stop()
        await runtime.cluster?.stop()
        for pool in pools {
            try? await pool.eventLoop.submit { pool.value.closeAll() }.get()
        }
        await runtime.accessLog.shutdown()
    }
}
