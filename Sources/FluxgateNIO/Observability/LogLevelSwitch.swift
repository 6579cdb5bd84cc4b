import FluxgateCore
import Logging
import Synchronization

/// The application log's level, changeable while running (`log_level`, applied again
/// on every reload). swift-log copies a handler's level into each `Logger`, so the
/// handlers made by ``makeHandler(label:)`` read this switch on every call instead.
public final class LogLevelSwitch: Sendable {
    private let level: Atomic<Int>

    public init(_ level: LogLevel = .info) {
        self.level = Atomic(Self.rank(level))
    }

    public func set(_ level: LogLevel) { self.level.store(Self.rank(level), ordering: .relaxed) }

    public var current: Logger.Level { Logger.Level.allCases[level.load(ordering: .relaxed)] }

    private static func rank(_ level: LogLevel) -> Int {
        Logger.Level.allCases.firstIndex { $0.rawValue == level.rawValue } ?? 2
    }

    /// A standard-error handler whose level follows this switch (for `LoggingSystem.bootstrap`).
    public func makeHandler(label: String) -> some LogHandler {
        SwitchedLogHandler(base: StreamLogHandler.standardError(label: label), switch: self)
    }
}

private struct SwitchedLogHandler<Base: LogHandler>: LogHandler {
    var base: Base
    let `switch`: LogLevelSwitch

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
        var base = self.base
        base.logLevel = event.level
        base.log(event: event)
    }
}
