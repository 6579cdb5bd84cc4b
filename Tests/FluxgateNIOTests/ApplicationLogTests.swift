import FluxgateCore
import FluxgateTestSupport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import Testing

@testable import FluxgateNIO

/// The application log (standard error): `log_level` and `log_format` through the
/// switch that every handler reads, and the JSON line's shape.
@Suite(.timeLimit(.minutes(1)))
struct ApplicationLogTests {
    /// A switch whose JSON lines are kept, and a logger over it whose text lines go to
    /// `text` (swift-log's stream handler in the gateway).
    final class Sink: Sendable {
        let json = NIOLockedValueBox<[String]>([])
        let text = AdmissionGateTests.Capture()
        let logSwitch: ApplicationLogSwitch

        init(_ level: LogLevel = .info, format: LogFormat) {
            let json = self.json
            logSwitch = ApplicationLogSwitch(level, format: format) { line in
                json.withLockedValue { $0.append(String(decoding: line, as: UTF8.self)) }
            }
        }

        func logger(_ label: String = "fluxgate") -> Logger {
            Logger(label: label) { [self] label in logSwitch.makeHandler(label: label, text: text) }
        }
    }

    /// Fixed fields first, in a fixed order, then the metadata by key; every string
    /// escaped; nested metadata as JSON; a metadata key spelt as a fixed field's
    /// renamed, never written twice.
    @Test func aJSONLineHasTheFixedFieldsThenTheMetadataByKey() throws {
        var line: [UInt8] = []
        ApplicationLogLine.writeJSON(
            unixMillis: 1_796_646_115_042, level: "warning", logger: "fluxgate", source: "FluxgateNIO",
            message: "invalid configuration:\n  - \"listen\": not an address",
            metadata: [
                "upstream": "app#2", "count": .stringConvertible(3), "message": "mine",
                "nested": .dictionary(["b": "2", "a": .array(["x", .dictionary([:])])]),
            ],
            into: &line)
        let text = String(decoding: line, as: UTF8.self)
        #expect(
            text == #"{"time":"2026-12-07T12:21:55.042Z","level":"warning","logger":"fluxgate","source":"FluxgateNIO","message":"invalid configuration:\n  - \"listen\": not an address","count":"3","metadata.message":"mine","nested":{"a":["x",{}],"b":"2"},"upstream":"app#2"}"#
                + "\n")
        // And it is JSON a collector reads back.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(object["message"] as? String == "invalid configuration:\n  - \"listen\": not an address")
        #expect(object["metadata.message"] as? String == "mine")
    }

    /// A reload's `log_format` and `log_level` reach loggers made before it: the switch
    /// is read on every line.
    @Test func theSwitchDecidesTheFormatAndLevelOfEveryLine() {
        let sink = Sink(format: .text)
        let logger = sink.logger()
        logger.info("as text")
        #expect(sink.text.lines.withLockedValue { $0 } == ["as text "] && sink.json.withLockedValue { $0 }.isEmpty)
        sink.logSwitch.set(.warning, format: .json)
        logger.info("below the level")
        logger.warning("upstream down", metadata: ["upstream": "a"])
        let lines = sink.json.withLockedValue { $0 }
        #expect(lines.count == 1)
        #expect(lines.first?.contains(#""level":"warning","logger":"fluxgate","source":"FluxgateNIOTests","message":"upstream down","upstream":"a"}"#) == true, "\(lines)")
        #expect(sink.text.lines.withLockedValue { $0 }.count == 1)
        sink.logSwitch.set(.info, format: .text)
        logger.info("text again")
        #expect(sink.text.lines.withLockedValue { $0 }.last == "text again " && sink.json.withLockedValue { $0 }.count == 1)
    }

    /// `FLUXGATE_LOG_FORMAT` picks the format before the configuration is read (a
    /// collector expecting JSON gets the start's lines as JSON too); a value that names
    /// no format leaves text, and the configuration's reading reports it.
    @Test func theEnvironmentPicksTheFormatFromTheFirstLine() throws {
        #expect(LogFormat.overridden(in: ["FLUXGATE_LOG_FORMAT": "JSON"]) == .json)
        #expect(LogFormat.overridden(in: ["FLUXGATE_LOG_FORMAT": "yaml"]) == nil)
        #expect(LogFormat.overridden(in: [:]) == nil)
        #expect(try ConfigLoader.load(yaml: "{}", environment: ["FLUXGATE_LOG_FORMAT": "json"]).logFormat == .json)
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "{}", environment: ["FLUXGATE_LOG_FORMAT": "yaml"]) }
        do {
            _ = try ConfigLoader.load(yaml: "log_format: logfmt")
            Issue.record("log_format: logfmt was accepted")
        } catch {
            #expect("\(error)".contains("log_format"), "\(error)")
            #expect("\(error)".contains("text or json"), "\(error)")
        }
    }

    /// A reload that turns JSON on: its own "configuration reloaded" line is the first
    /// one written as JSON, with `log_format` among the changes.
    @Test func aReloadChangesTheFormat() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let upstream = try await TestUpstream.start(name: "a", group: group)
        let sink = Sink(format: .text)
        var config = try makeConfig(upstreams: [upstream.url])
        config.logLevel = .notice
        let server = try GatewayServer(config: config, group: group, logger: sink.logger(), applicationLog: sink.logSwitch)
        _ = try await server.start()
        config.logFormat = .json
        let outcome = await server.reload(config)
        #expect(outcome.succeeded && outcome.changes.contains("log_format"), "\(outcome)")
        #expect(sink.logSwitch.format == .json)
        let lines = sink.json.withLockedValue { $0 }
        #expect(lines.contains { $0.contains(#""message":"configuration reloaded""#) && $0.contains("log_format") }, "\(lines)")
        try await server.stop()
        try await upstream.stop()
        try await group.shutdownGracefully()
    }
}
