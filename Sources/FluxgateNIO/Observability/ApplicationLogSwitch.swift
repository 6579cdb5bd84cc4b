import FluxgateCore
import Logging
import Synchronization

/// The application log's level and line format, changeable while running (`log_level`
/// and `log_format`, applied again on every reload). swift-log copies a handler's level
/// into each `Logger`, so the handlers made by ``makeHandler(label:)`` read this switch
/// on every call instead.
public final class ApplicationLogSwitch: Sendable {
    private let level: Atomic<Int>
    private let json: Atomic<Bool>
    /// Where JSON lines go, one call per line (standard error; a test's buffer).
    let writeLine: @Sendable ([UInt8]) -> Void

    /// `format`: before the configuration is read, `FLUXGATE_LOG_FORMAT`'s, so that a
    /// collector expecting JSON gets it from the first line (``LogFormat/overridden(in:)``).
    public convenience init(_ level: LogLevel = .info, format: LogFormat = .text) {
        self.init(level, format: format, writeLine: Self.writeToStandardError)
    }

    init(_ level: LogLevel, format: LogFormat, writeLine: @escaping @Sendable ([UInt8]) -> Void) {
        self.level = Atomic(Self.rank(level))
        self.json = Atomic(format == .json)
        self.writeLine = writeLine
    }

    public func set(_ level: LogLevel, format: LogFormat) {
        self.level.store(Self.rank(level), ordering: .relaxed)
        self.json.store(format == .json, ordering: .relaxed)
    }

    public var current: Logger.Level { Self.levels[level.load(ordering: .relaxed)] }

    public var format: LogFormat { json.load(ordering: .relaxed) ? .json : .text }

    /// Made once: a synthesized `allCases` builds its array on every call, and the level
    /// is read for every log call, also those below it.
    private static let levels = Logger.Level.allCases

    private static func rank(_ level: LogLevel) -> Int {
        levels.firstIndex { $0.rawValue == level.rawValue } ?? 2
    }

    /// A standard-error handler whose level and format follow this switch (for
    /// `LoggingSystem.bootstrap`).
    public func makeHandler(label: String) -> some LogHandler {
        makeHandler(label: label, text: StreamLogHandler.standardError(label: label))
    }

    /// The same over another handler for the text lines (tests).
    func makeHandler<Text: LogHandler>(label: String, text: Text) -> some LogHandler {
        SwitchedLogHandler(base: text, label: label, switch: self)
    }

    /// The whole line in one `write` (on a pipe, lines up to `PIPE_BUF`, 4 KiB, never
    /// interleave with other threads'); a failure has nowhere else to be reported.
    @Sendable private static func writeToStandardError(_ line: [UInt8]) {
        _ = LineWriter.writeAll(2, line[...])
    }
}

private struct SwitchedLogHandler<Base: LogHandler>: LogHandler {
    var base: Base
    let label: String
    let `switch`: ApplicationLogSwitch

    var logLevel: Logger.Level {
        get { `switch`.current }
        set {}  // the switch decides
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        guard `switch`.format == .json else {
            var base = self.base
            base.logLevel = event.level
            base.log(event: event)
            return
        }
        // swift-log's order of precedence: the handler's metadata, the provider's, the event's.
        var fields = base.metadata
        if let provided = base.metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var line: [UInt8] = []
        ApplicationLogLine.writeJSON(
            unixMillis: AccessLog.unixMillis(), level: event.level.rawValue, logger: label, source: event.source,
            message: "\(event.message)", metadata: fields, into: &line)
        `switch`.writeLine(line)
    }
}

/// One application-log line as a JSON object: `time` (RFC 3339, UTC, milliseconds, as
/// the access log's), `level`, `logger` (the `Logger`'s label), `source` (the module
/// that logged it, as the text line's `[FluxgateNIO]`), `message`, then the metadata by
/// key in sorted order — nested values as JSON arrays and objects, every other value as
/// a string. A metadata key spelt as one of the fixed ones is written with a
/// `metadata.` prefix, so no key appears twice.
///
/// Written here because swift-log ships only a text handler (`StreamLogHandler`) and no
/// JSON one is in the package set (swift-otel's logging speaks OTLP to a collector, not
/// lines on standard error); the escaping and the timestamp are the access log's.
enum ApplicationLogLine {
    static let fixedKeys: Set<String> = ["time", "level", "logger", "source", "message"]

    static func writeJSON(
        unixMillis: Int64, level: String, logger: String, source: String, message: String, metadata: Logger.Metadata,
        into out: inout [UInt8]
    ) {
        out.append(UInt8(ascii: "{"))
        var line = AccessLineWriter(json: true)
        line.field("time", into: &out) { AccessRecord.writeTimestamp(unixMillis, into: &$0) }
        line.field("level", level, into: &out)
        line.field("logger", logger, into: &out)
        line.field("source", source, into: &out)
        line.field("message", message, into: &out)
        writeMembers(metadata, afterOthers: true, into: &out) { fixedKeys.contains($0) ? "metadata.\($0)" : $0 }
        out.append(contentsOf: "}\n".utf8)
    }

    /// `"key":value` pairs by key in sorted order, comma-separated (and after a comma
    /// when members were written before them).
    private static func writeMembers(
        _ fields: Logger.Metadata, afterOthers: Bool, into out: inout [UInt8], name: (String) -> String = { $0 }
    ) {
        for (index, key) in fields.keys.sorted().enumerated() {
            if afterOthers || index > 0 { out.append(UInt8(ascii: ",")) }
            JSONText.appendQuoted(name(key), into: &out)
            out.append(UInt8(ascii: ":"))
            write(fields[key]!, into: &out)
        }
    }

    private static func write(_ value: Logger.Metadata.Value, into out: inout [UInt8]) {
        switch value {
        case .string(let text): JSONText.appendQuoted(text, into: &out)
        case .stringConvertible(let item): JSONText.appendQuoted(item.description, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let fields):
            out.append(UInt8(ascii: "{"))
            writeMembers(fields, afterOthers: false, into: &out)
            out.append(UInt8(ascii: "}"))
        }
    }
}
