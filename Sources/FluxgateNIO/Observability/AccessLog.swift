#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FluxgateCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// One line per request (`access_log`), through swift-log.
///
/// The exchange's single end calls ``log(_:exchange:client:upstream:)`` when the log is
/// on and the request is sampled; the line is a swift-log event carrying one
/// ``AccessRecord``, whose handler (``AccessLogHandler``) writes it as logfmt or JSON
/// straight into the ``LineWriter``'s buffer on the event loop. The writer thread
/// writes the buffer out every `access_log.flush_interval` (1 s, as Envoy's access log
/// files; `0s`: every line as soon as it ends) or as soon as 64 KiB are waiting. A slow
/// or blocked output (a full pipe, a slow disk) never blocks the event loop: the writer
/// buffers up to ``LineWriter/maxPending`` bytes and then drops lines, counting them
/// (`fluxgate_access_log_dropped_total`).
///
/// Off (the default), the data path pays one relaxed atomic load per request; on, about
/// a microsecond per line (docs/PERFORMANCE.md, "The access log").
final class AccessLog: Sendable {
    private let enabled = Atomic<Bool>(false)
    /// The sampling fraction's bits (a `Double`).
    private let sample = Atomic<UInt64>(1.0.bitPattern)
    private let sink: AccessLogSink
    private let logger: Logger

    init(config: AccessLogConfig, logger: Logger) throws {
        self.sink = AccessLogSink(writer: LineWriter(errorLogger: logger))
        let sink = self.sink
        var access = Logger(label: "fluxgate.access") { _ in AccessLogHandler(sink: sink) }
        access.logLevel = .info
        self.logger = access
        reconfigure(config)
    }

    var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// `draw` uniform in [0, 1): true for the sampled fraction.
    func sampled(_ draw: Double) -> Bool { draw < Double(bitPattern: sample.load(ordering: .relaxed)) }

    var dropped: Int { sink.writer.dropped }
    var writeFailed: Int { sink.writer.writeFailed }

    /// A reload: switch, fraction, format, flush interval and output take effect for the
    /// next line; a file output is reopened (log rotation: move the file, then reload) —
    /// lines that ended before the reload go to the old one.
    func reconfigure(_ config: AccessLogConfig) {
        sink.json.store(config.format == .json, ordering: .relaxed)
        sink.writer.setFlushInterval(config.flushInterval)
        if config.enabled { sink.writer.open(path: config.path) }
        sample.store(config.sample.bitPattern, ordering: .relaxed)
        enabled.store(config.enabled, ordering: .relaxed)
    }

    func log(_ outcome: ExchangeLifecycle.Outcome, exchange: Exchange, client: String, clientCertificate: String?, upstream: String?) {
        let status: AccessRecord.Status
        var shedReason: String?
        switch outcome.end {
        case .proxied(let code), .gatewayAnswer(let code): status = .code(code)
        case .shed(let reason):
            status = .code(reason.status)
            shedReason = reason.rawValue
        case .cutOff, .clientGone:
            // As nginx logs them: the status the client was sent, when its head went
            // out; 499 for a client that left before any answer; `-` for a response
            // cut off before its head (the gateway never sent one).
            if exchange.relay.headSent, let code = exchange.relay.status {
                status = .code(code)
            } else {
                status = outcome.end == .clientGone ? .code(499) : .none
            }
        }
        let record = AccessRecord(
            unixMillis: Self.unixMillis(),
            client: client, method: exchange.method.name, path: exchange.target.string, status: status, upstream: upstream,
            bytes: exchange.bytesSent, durationMicros: outcome.total.nanosecondsClamped / 1000,
            queueWaitMicros: outcome.queueWait.nanosecondsClamped / 1000, shedReason: shedReason, retries: outcome.retries,
            outcome: TrafficStats.ends[TrafficStats.endIndex(outcome.end)], detail: exchange.problem,
            requestID: exchange.requestID, clientCertificate: clientCertificate)
        logger.info("request", metadata: [AccessLogHandler.recordKey: .stringConvertible(record)])
    }

    /// Input answered before it made a request head
    /// (``AccessRecord/refusal(unixMillis:client:method:path:status:bytes:detail:)``).
    func logRefusal(client: String, clientCertificate: String?, line: RefusedRequestLine?, status: Int, bytes: Int, detail: String) {
        let record = AccessRecord.refusal(
            unixMillis: Self.unixMillis(), client: client, clientCertificate: clientCertificate, method: line?.method ?? "-", path: line?.target ?? "-", status: status,
            bytes: bytes, detail: detail)
        logger.info("request", metadata: [AccessLogHandler.recordKey: .stringConvertible(record)])
    }

    static func unixMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// Writes what is buffered and stops the writer thread.
    func shutdown() async {
        await sink.writer.shutdown()
    }
}

/// What the handler needs, shared with ``AccessLog`` so a reload reaches it.
final class AccessLogSink: Sendable {
    /// `access_log.format` is `json` (else logfmt).
    let json = Atomic<Bool>(false)
    let writer: LineWriter

    init(writer: LineWriter) {
        self.writer = writer
    }
}

/// swift-log handler for access lines: an event carrying an ``AccessRecord`` is
/// written in the record's fixed field order; any other event (nothing else logs
/// through this logger) as its message and metadata, keys sorted, in the same format.
struct AccessLogHandler: LogHandler {
    static let recordKey = "access"
    let sink: AccessLogSink
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let json = sink.json.load(ordering: .relaxed)
        if metadata.isEmpty, let fields = event.metadata, fields.count == 1,
            case .stringConvertible(let value)? = fields[Self.recordKey], let record = value as? AccessRecord
        {
            sink.writer.append { record.write(json: json, into: &$0) }
            return
        }
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let message = "\(event.message)"
        sink.writer.append { out in
            var line = AccessLineWriter(json: json)
            if json { out.append(UInt8(ascii: "{")) }
            line.field("message", message, into: &out)
            for key in fields.keys.sorted() { line.field(named: key, "\(fields[key]!)", into: &out) }
            if json { out.append(UInt8(ascii: "}")) }
            out.append(UInt8(ascii: "\n"))
        }
    }
}

/// Buffers lines and writes them to standard output or a file from one background
/// thread, in order, every flush interval or as soon as ``flushBytes`` are waiting —
/// one `write` per batch instead of one wake-up of the thread and one `write` per line,
/// which cost more CPU than proxying the request (docs/PERFORMANCE.md, "The access
/// log"). Appending never blocks on I/O.
final class LineWriter: Sendable {
    /// Buffered bytes beyond which lines are dropped rather than held.
    static let maxPending = 8 << 20
    /// Buffered bytes that wake the writer before its interval ends (Envoy's 64 KiB).
    static let flushBytes = 64 << 10
    private struct State {
        var pending: [UInt8] = []
        /// The writer was woken for what is pending and has not taken it yet.
        var signalled = false
        var dropped = 0
        /// Lines the output refused (a full disk, a closed pipe): lost.
        var writeFailed = 0
        var fd: Int32 = -1
        /// The output's path, for the error log.
        var path = "-"
        /// A file to open (or `-`) before the next write.
        var reopen: String?
        /// How many of the pending bytes were appended before the reopen was asked
        /// for: they go to the old output, the rest to the new one.
        var reopenAt = 0
        var flushInterval: Duration = .seconds(1)
        var stopped = false
    }
    private let state = Mutex(State())
    /// True while the writer has something to do before its interval ends.
    private let wake = ConditionLock(value: false)
    private let thread: NIOThreadPool
    private let errorLogger: Logger
    /// A failing output is reported at most once a second (nginx reports each failed
    /// `write`), with the lines lost so far.
    private let failureLog = LogThrottle()

    init(errorLogger: Logger) {
        self.errorLogger = errorLogger
        self.thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        thread.submit { [self] workState in
            guard case .active = workState else { return }
            run()
        }
    }

    var dropped: Int { state.withLock { $0.dropped } }
    var writeFailed: Int { state.withLock { $0.writeFailed } }

    /// `0`: every line is written as soon as it is appended.
    func setFlushInterval(_ interval: Duration) {
        state.withLock { $0.flushInterval = interval }
        signal()
    }

    /// Directs output to `path` (`-`: standard output) from the next write on; a file
    /// that is already the output is reopened (rotation).
    func open(path: String) {
        state.withLock { state in
            // A second reopen before the writer ran keeps the first boundary: what came
            // before either goes to the old output, the rest to the latest path.
            if state.reopen == nil { state.reopenAt = state.pending.count }
            state.reopen = path
        }
        signal()
    }

    /// Appends one line, written by `body` at the end of the buffer; dropped (and
    /// counted) when ``maxPending`` bytes are already waiting.
    func append(_ body: (inout [UInt8]) -> Void) {
        let wakeNow: Bool = state.withLock { state in
            guard !state.stopped else { return false }
            if state.pending.count >= Self.maxPending {
                state.dropped += 1
                return false
            }
            body(&state.pending)
            guard !state.signalled, state.pending.count >= Self.flushBytes || state.flushInterval <= .zero else { return false }
            state.signalled = true
            return true
        }
        if wakeNow { signal() }
    }

    private func signal() {
        wake.lock()
        wake.unlock(withValue: true)
    }

    /// The writer thread: sleeps until woken or the interval ends, then writes what is
    /// waiting; after ``shutdown()``, writes the rest and returns.
    private func run() {
        var chunk: [UInt8] = []
        while true {
            let interval = state.withLock { $0.flushInterval }
            if interval > .zero {
                if wake.lock(whenValue: true, timeoutSeconds: Double(interval.nanosecondsClamped) / 1e9) {
                    wake.unlock(withValue: false)
                }
            } else {
                wake.lock(whenValue: true)
                wake.unlock(withValue: false)
            }
            if writeWaiting(&chunk) { return }
        }
    }

    /// Takes what is pending (and a reopen asked for), writes it — the lines that ended
    /// before the reopen to the old output, the rest to the new one; true once stopped.
    private func writeWaiting(_ chunk: inout [UInt8]) -> Bool {
        let (oldFD, reopen, reopenAt, stopped) = state.withLock { state in
            swap(&chunk, &state.pending)
            state.signalled = false
            defer {
                state.reopen = nil
                state.reopenAt = 0
            }
            return (state.fd, state.reopen, state.reopenAt, state.stopped)
        }
        var fd = oldFD
        var boundary = 0
        if let path = reopen {
            // Lines that ended before the reopen go to the old output; with none yet
            // (the first open), everything that waited goes to the new one.
            if fd >= 0 {
                boundary = reopenAt
                write(fd, chunk[..<boundary])
            }
            self.reopen(path)
            fd = state.withLock { $0.fd }
        }
        if fd >= 0 {
            write(fd, chunk[boundary...])
        } else if boundary < chunk.count {
            // No output at all (its first open failed): lost, and counted as such.
            let lines = Self.lines(in: chunk[boundary...])
            state.withLock { $0.writeFailed += lines }
        }
        chunk.removeAll(keepingCapacity: true)
        return stopped
    }

    /// Opens `path` and makes it the output, closing the previous file.
    private func reopen(_ path: String) {
        let fd: Int32
        if path == "-" {
            fd = 1
        } else {
            fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            if fd < 0 {
                let code = errno  // checked at start and reload; this is a file that went away since
                let keeps = state.withLock { $0.fd >= 0 }
                errorLogger.error(
                    keeps
                        ? "access log: cannot open file; lines go on to the file open before until a reopen or reload opens it"
                        : "access log: cannot open file; lines are lost, and counted, until a reopen or reload opens it",
                    metadata: ["path": "\(path)", "error": "\(errnoWords(code)) (errno \(code))"])
                return
            }
        }
        let old = state.withLock { state in
            defer {
                state.fd = fd
                state.path = path
            }
            return state.fd
        }
        if old > 2 && old != fd { close(old) }
    }

    /// Writes `bytes` to `fd`; what the output refuses is lost — counted by its lines and
    /// reported (until 2026-12-06 silently: an access log on a full disk or a closed pipe
    /// lost every line without a word or a count, found by pointing it at /dev/full).
    private func write(_ fd: Int32, _ bytes: ArraySlice<UInt8>) {
        guard let (code, unwritten) = Self.writeAll(fd, bytes) else { return }
        let lines = Self.lines(in: unwritten)
        let (total, path) = state.withLock { state in
            state.writeFailed += lines
            return (state.writeFailed, state.path)
        }
        guard failureLog.allow(now: .current) else { return }
        errorLogger.error(
            "access log: the output refused lines; they are lost (fluxgate_access_log_dropped_total{reason=\"write_failed\"})",
            metadata: ["path": "\(path)", "error": "\(errnoWords(code)) (errno \(code))", "lines_lost": "\(total)"])
    }

    /// Lines in `bytes` (each ends in a newline; a line cut short counts as one).
    private static func lines(in bytes: ArraySlice<UInt8>) -> Int {
        let ended = bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        return bytes.last == UInt8(ascii: "\n") || bytes.isEmpty ? ended : ended + 1
    }

    /// Writes all of `bytes`, or stops at the first failure: then its errno and what was
    /// not written (the writer never blocks on an output that is gone).
    static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> (Int32, ArraySlice<UInt8>)? {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    return (code, bytes.dropFirst(offset))
                }
                offset += written
            }
            return nil
        }
    }

    /// Stops taking lines, lets the writer thread write the rest and stop, then closes
    /// the file. (Should the thread never have started, the rest is written here.)
    func shutdown() async {
        state.withLock { $0.stopped = true }
        signal()
        try? await thread.shutdownGracefully()
        var chunk: [UInt8] = []
        _ = writeWaiting(&chunk)
        let fd = state.withLock { $0.fd }
        if fd > 2 { close(fd) }
    }
}
