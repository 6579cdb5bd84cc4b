#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FluxgateCore
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One line per request (`access_log`), through swift-log.
///
/// The exchange's single end calls ``log(_:exchange:client:upstream:)`` when the log is
/// on and the request is sampled; the line is a swift-log event whose handler
/// (``AccessLogHandler``) formats it as logfmt or JSON on the event loop and hands the
/// bytes to a ``LineWriter``, which writes them from its own thread. A slow or blocked
/// output (a full pipe, a slow disk) never blocks the event loop: the writer buffers up
/// to ``LineWriter/maxPending`` bytes and then drops lines, counting them
/// (`fluxgate_access_log_dropped_total`).
///
/// Off (the default), the data path pays one relaxed atomic load per request.
final class AccessLog: Sendable {
    private let enabled = Atomic<Bool>(false)
    /// The sampling fraction's bits (a `Double`).
    private let sample = Atomic<UInt64>(1.0.bitPattern)
    private let sink: AccessLogSink
    private let logger: Logger

    init(config: AccessLogConfig, logger: Logger) throws {
        self.sink = AccessLogSink(format: config.format, writer: LineWriter(errorLogger: logger))
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

    /// A reload: switch, fraction, format and output take effect for the next line; a
    /// file output is reopened (log rotation: move the file, then reload).
    func reconfigure(_ config: AccessLogConfig) {
        sink.format.withLock { $0 = config.format }
        if config.enabled { sink.writer.open(path: config.path) }
        sample.store(config.sample.bitPattern, ordering: .relaxed)
        enabled.store(config.enabled, ordering: .relaxed)
    }

    func log(_ outcome: ExchangeLifecycle.Outcome, exchange: Exchange, client: String, upstream: String?) {
        var metadata: Logger.Metadata = [
            "client": .string(client),
            "method": .string(exchange.method.name),
            "path": .string(exchange.target),
            "bytes": .stringConvertible(exchange.bytesSent),
            "duration_ms": .string(Self.milliseconds(outcome.total)),
            "queue_wait_ms": .string(Self.milliseconds(outcome.queueWait)),
            "request_id": .string(exchange.requestID.description),
            "outcome": .string(TrafficStats.ends[TrafficStats.endIndex(outcome.end)]),
        ]
        switch outcome.end {
        case .proxied(let status), .gatewayAnswer(let status): metadata["status"] = .stringConvertible(status)
        case .shed(let reason):
            metadata["status"] = .stringConvertible(reason.status)
            metadata["shed_reason"] = .string(reason.rawValue)
        case .cutOff, .clientGone:
            // As nginx logs them: the status the client was sent, when its head went
            // out; 499 for a client that left before any answer; `-` for a response
            // cut off before its head (the gateway never sent one).
            if exchange.relay.headSent, let status = exchange.relay.status {
                metadata["status"] = .stringConvertible(status)
            } else {
                metadata["status"] = .string(outcome.end == .clientGone ? "499" : "-")
            }
        }
        if let upstream { metadata["upstream"] = .string(upstream) }
        if outcome.retries > 0 { metadata["retries"] = .stringConvertible(outcome.retries) }
        logger.info("request", metadata: metadata)
    }

    /// Milliseconds with microsecond resolution, e.g. `0.412`.
    static func milliseconds(_ duration: Duration) -> String {
        let micros = max(0, duration.nanosecondsClamped / 1000)
        let fraction = micros % 1000
        let padded = fraction < 10 ? "00\(fraction)" : fraction < 100 ? "0\(fraction)" : "\(fraction)"
        return "\(micros / 1000).\(padded)"
    }

    /// Writes what is buffered and stops the writer thread.
    func shutdown() async {
        await sink.writer.shutdown()
    }
}

/// What the handler needs, shared with ``AccessLog`` so a reload reaches it.
final class AccessLogSink: Sendable {
    let format: Mutex<AccessLogConfig.Format>
    let writer: LineWriter

    init(format: AccessLogConfig.Format, writer: LineWriter) {
        self.format = Mutex(format)
        self.writer = writer
    }
}

/// swift-log handler for access lines: fixed field order, logfmt or JSON, one line each.
struct AccessLogHandler: LogHandler {
    static let order = [
        "time", "client", "method", "path", "status", "upstream", "bytes", "duration_ms", "queue_wait_ms", "shed_reason",
        "retries", "outcome", "request_id",
    ]
    let sink: AccessLogSink
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        fields["time"] = .string(Self.timestamp())
        let json = sink.format.withLock { $0 } == .json
        var line = json ? "{" : ""
        var first = true
        func add(_ key: String, _ value: Logger.Metadata.Value) {
            let text = "\(value)"
            if json {
                line += "\(first ? "" : ",")\"\(key)\":\(Self.jsonString(text))"
            } else {
                line += "\(first ? "" : " ")\(key)=\(Self.logfmtValue(text))"
            }
            first = false
        }
        for key in Self.order { if let value = fields[key] { add(key, value) } }
        for key in fields.keys.sorted() where !Self.order.contains(key) { add(key, fields[key]!) }
        line += json ? "}\n" : "\n"
        sink.writer.append(line)
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-30T13:51:30.123Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(now.tv_nsec) / 1_000_000
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms)Z"
    }

    /// logfmt: bare when it is safe, else quoted with `"` and `\` escaped.
    static func logfmtValue(_ text: String) -> String {
        if !text.isEmpty, !text.utf8.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\\") || $0 >= 0x7F }) {
            return text
        }
        return jsonString(text)
    }

    /// A JSON string literal (also valid logfmt quoting).
    static func jsonString(_ text: String) -> String { JSONText.quote(text) }
}

/// Buffers lines and writes them to standard output or a file from one background
/// thread (an `NIOThreadPool` of one), in order. Appending never blocks on I/O.
final class LineWriter: Sendable {
    /// Buffered bytes beyond which lines are dropped rather than held.
    static let maxPending = 8 << 20
    private struct State {
        var pending: [UInt8] = []
        var flushing = false
        var dropped = 0
        var fd: Int32 = -1
        var path: String?
        var stopped = false
    }
    private let state = Mutex(State())
    private let thread: NIOThreadPool
    private let errorLogger: Logger

    init(errorLogger: Logger) {
        self.errorLogger = errorLogger
        self.thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
    }

    var dropped: Int { state.withLock { $0.dropped } }

    /// Directs output to `path` (`-`: standard output), reopening a file that is already the output.
    func open(path: String) {
        let logger = errorLogger
        submit { state in
            let fd: Int32
            if path == "-" {
                fd = 1
            } else {
                fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
                if fd < 0 {
                    logger.error("access log: cannot open file", metadata: ["path": "\(path)", "errno": "\(errno)"])
                    return
                }
            }
            let old = state.withLock { state in
                defer { state.fd = fd; state.path = path }
                return state.fd
            }
            if old > 2 && old != fd { close(old) }
        }
    }

    func append(_ line: String) {
        let wake: Bool = state.withLock { state in
            guard !state.stopped else { return false }
            if state.pending.count + line.utf8.count > Self.maxPending {
                state.dropped += 1
                return false
            }
            state.pending.append(contentsOf: line.utf8)
            guard !state.flushing else { return false }
            state.flushing = true
            return true
        }
        if wake { submit { state in Self.flush(state) } }
    }

    private func submit(_ work: @escaping @Sendable (borrowing Mutex<State>) -> Void) {
        thread.submit { [self] workState in
            guard case .active = workState else { return }
            work(state)
        }
    }

    /// Writes until nothing is pending (on the writer thread).
    private static func flush(_ state: borrowing Mutex<State>) {
        var chunk: [UInt8] = []
        while true {
            let fd: Int32 = state.withLock { state in
                if state.pending.isEmpty {
                    state.flushing = false
                    return -1
                }
                swap(&chunk, &state.pending)
                state.pending.removeAll(keepingCapacity: true)
                return state.fd
            }
            if fd == -1 && chunk.isEmpty { return }
            if fd >= 0 { writeAll(fd, chunk) }
            chunk.removeAll(keepingCapacity: true)
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // the output is gone; lines are lost rather than blocking the writer
                }
                offset += written
            }
        }
    }

    /// Stops taking lines, stops the thread, then writes what it had not (work items
    /// still queued at shutdown are cancelled by the pool, not run).
    func shutdown() async {
        state.withLock { $0.stopped = true }
        try? await thread.shutdownGracefully()
        Self.flush(state)
        let fd = state.withLock { $0.fd }
        if fd > 2 { close(fd) }
    }
}
