import ArgumentParser
import FluxgateApp
import FluxgateCore
import FluxgateNIO
import FluxorDemo
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import UnixSignals

@main
struct FluxgateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fluxgate",
        abstract: "Admission-control reverse proxy: spreads requests over healthy upstreams and sheds excess load fast.",
        version: FluxgateVersion.string,
        subcommands: [Serve.self, CheckConfig.self, Reload.self, Healthcheck.self, DemoUpstream.self],
        defaultSubcommand: Serve.self
    )
}

enum FluxgateVersion {
    static let string = FluxgateBuild.version
}

struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Config file (YAML). Without it, ./gateway.conf is used if present, else the built-in defaults.")
    var config: String?

    var path: String { config ?? "gateway.conf" }

    func load() throws(ConfigErrors) -> GatewayConfig {
        try ConfigLoader.load(path: path, required: config != nil)
    }

    /// The file, or its errors on standard error (each with its key path; then `then`,
    /// when given) and exit status 1: `check-config`'s answer, and `reload`'s.
    func loadOrExit(then: String? = nil) throws -> GatewayConfig {
        do {
            return try load()
        } catch {
            var stderr = StandardError()
            print("\(path): \(error.errors.count) error(s)\n\(error)", to: &stderr)
            if let then { print(then, to: &stderr) }
            throw ExitCode(1)
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the gateway (the default when no subcommand is given).",
        discussion: """
            Signals: SIGHUP reloads the config file (a bad file is refused; the running \
            configuration stays). SIGUSR1 reopens the access-log file. SIGUSR2 replaces \
            this process with the binary at its path, on the same listening sockets \
            (no connection refused; the old process drains once the new one serves). \
            SIGTERM or SIGINT drains (drain_timeout) and exits 0; a second one exits at once.
            """)

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Override `listen` (host:port).")
    var listen: String?

    func run() async throws {
        let levelSwitch = ApplicationLogSwitch(format: LogFormat.overridden(in: ProcessInfo.processInfo.environment) ?? .text)
        LoggingSystem.bootstrap { label in levelSwitch.makeHandler(label: label) }
        let logger = Logger(label: "fluxgate")
        let listenOverride: SocketEndpoint?
        if let listen {
            guard let endpoint = SocketEndpoint.parseListen(listen) else {
                logger.error("--listen: expected host:port such as 0.0.0.0:8080, got \"\(listen)\"")
                throw ExitCode(2)
            }
            listenOverride = endpoint
        } else {
            listenOverride = nil
        }
        let adjust: @Sendable (inout GatewayConfig) -> Void = { config in
            if let listenOverride { config.listen = listenOverride }
        }
        var config: GatewayConfig
        do {
            config = try options.load()
        } catch {
            logger.error("invalid configuration:\n\(error)")
            throw ExitCode(2)
        }
        adjust(&config)
        let problems = StartupProblems.check(config)
        if !problems.isEmpty {
            logger.error("invalid configuration:\n\(problems.map { "  - \($0)" }.joined(separator: "\n"))")
            throw ExitCode(2)
        }
        for warning in ConfigLoader.environmentWarnings(ProcessInfo.processInfo.environment) { logger.warning("\(warning)") }
        // (The start logs names listing more addresses than taken itself, once resolved.)
        for warning in StartupProblems.warnings(config, resolve: false) { logger.warning("\(warning)") }
        // Before the connection cap is derived from it (docs/TUNING.md, "Descriptors and memory").
        if let raised = DescriptorLimit.raiseToHardLimit() {
            logger.info("descriptor limit raised to the hard limit", metadata: ["from": "\(raised.from)", "to": "\(raised.to)"])
        }
        // One registry for the process: swift-metrics' metrics (libraries included) and
        // the gateway's own both come out of the admin listener's /metrics.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let path = options.path
        // Reloads read the same file with the same overrides (environment, --listen).
        let source = FileManager.default.fileExists(atPath: path) ? ConfigSource.file(path, adjust: adjust) : nil
        if let reason = source?.notReloadable { logger.notice("reloads will be refused: \(reason)") }
        let environment = ProcessInfo.processInfo.environment
        let sockets = try Self.inheritedSockets(config: config, environment: environment, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: config.workers == 0 ? System.coreCount : config.workers)
        let application = try GatewayApplication(
            config: config, group: group, logger: logger, source: source, registry: registry, applicationLog: levelSwitch,
            commandLine: listenOverride == nil ? [] : ["listen (serve --listen)"])
        do {
            try await application.start(sockets: sockets.sockets)
        } catch {
            logger.error("cannot start: \(error)")
            throw ExitCode(1)
        }
        if case .upgrade(let from)? = sockets.source {
            // Serving: the process that started this one can drain now.
            kill(from, SIGTERM)
            logger.notice("upgrade: serving on the listening sockets of process \(from), which drains now", metadata: ["from": "\(from)"])
        }
        let executable = ProcessHandover.executablePath()
        let upgrade = InPlaceUpgrade(
            gateway: application.gateway, logger: logger,
            unavailable: UpgradeState.unavailability(
                pid: getpid(), environment: environment, runsEmbeddedDemo: config.runsEmbeddedDemo,
                configNotReadAgain: source?.notReloadable, executableFound: executable != nil),
            executable: executable, arguments: CommandLine.arguments, environment: environment)
        let serviceGroup = ServiceGroup(
            configuration: .init(services: application.services.map { .init(service: $0) }, logger: logger))
        // Signals: SIGHUP reloads; SIGUSR1 reopens the access-log file (nginx's and
        // Envoy's meaning); SIGUSR2 upgrades in place (nginx's binary upgrade: the binary
        // at this path again, on the same listening sockets); the first SIGTERM/SIGINT
        // drains (drain_timeout) — a handover when the upgrade's new process sent it —
        // and a second one exits at once.
        let signals = Task {
            var stopping = false
            for await signal in await UnixSignalsSequence(trapping: .sighup, .sigusr1, .sigusr2, .sigterm, .sigint) {
                if signal == .sighup {
                    _ = await application.gateway.reloadFromSource()
                } else if signal == .sigusr1 {
                    let path = application.gateway.reopenLogs()
                    logger.notice("SIGUSR1: \(path.map { "access log reopened: \($0)" } ?? "no access-log file to reopen")")
                } else if signal == .sigusr2 {
                    await upgrade.start()
                } else if !stopping {
                    stopping = true
                    switch upgrade.stopRequested() {
                    case .drain:
                        logger.notice("\(signal): graceful shutdown (a second signal exits at once)")
                    case .handOver(let child):
                        logger.notice(
                            "\(signal): the new process serves; closing the admin listener and draining (a second signal exits at once)",
                            metadata: ["pid": "\(child)"])
                        await application.gateway.handOver()
                    }
                    await serviceGroup.triggerGracefulShutdown()
                } else {
                    logger.warning("\(signal) again: exiting now")
                    Foundation.exit(1)
                }
            }
        }
        try await serviceGroup.run()
        signals.cancel()
        try await group.shutdownGracefully()
    }
}

extension Serve {
    /// The listening sockets systemd or an upgrading gateway handed this process, matched
    /// to the configuration's listeners (exits when they cannot be used).
    static func inheritedSockets(
        config: GatewayConfig, environment: [String: String], logger: Logger
    ) throws -> (sockets: ListenerSockets, source: InheritedListeners.Source?) {
        let (inherited, warning) = InheritedListeners.read(environment: environment, pid: getpid(), parentPID: getppid())
        if let warning { logger.warning("\(warning)") }
        guard let inherited else { return (ListenerSockets(), nil) }
        let match = GatewayServer.matchInherited(inherited, config: config)
        guard match.problems.isEmpty else {
            logger.error("cannot use the inherited listening sockets:\n\(match.problems.map { "  - \($0)" }.joined(separator: "\n"))")
            throw ExitCode(2)
        }
        for descriptor in match.unused {
            logger.notice("closing a handed-over listening socket this configuration does not listen on", metadata: ["descriptor": "\(descriptor)"])
            close(descriptor)
        }
        logger.info(
            "listening sockets handed over",
            metadata: [
                "from": "\(inherited.source == .systemd ? "systemd" : "upgrade")",
                "listen": "\(match.sockets.data.map { "descriptor \($0)" } ?? "bound here")",
                "admin_listen": "\(match.sockets.admin.map { "descriptor \($0)" } ?? "bound here")",
            ])
        var sockets = match.sockets
        if case .upgrade(let from) = inherited.source { sockets.predecessor = from }
        return (sockets, inherited.source)
    }
}

struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Ask a running gateway to reload its config file (POST /reload on its admin listener); prints the result.",
        discussion: """
            The admin listener is --admin when given, else the file's admin_listen: --config, \
            else ./gateway.conf when present (as `fluxgate` itself finds its file), else \
            127.0.0.1:9090. A file that does not load is not sent for: its errors are printed \
            (the gateway would refuse it and keep its configuration).
            """)

    @Option(name: .long, help: "The gateway's admin listener (host:port); without it, admin_listen of the config file.")
    var admin: String?

    @OptionGroup var options: ConfigOptions

    func validate() throws {
        if admin != nil, options.config != nil {
            throw ValidationError("--admin and --config: give one (--admin names the listener; --config reads admin_listen from the file)")
        }
        if let admin, SocketEndpoint.parse(admin) == nil {
            throw ValidationError("--admin: expected host:port such as 127.0.0.1:9090")
        }
    }

    func run() async throws {
        let endpoint: SocketEndpoint
        if let admin, let given = SocketEndpoint.parse(admin) {
            endpoint = given
        } else {
            // The file the gateway reads (nginx -s reload reads its config the same way):
            // a gateway started with admin_listen: 127.0.0.1:9191 is asked there.
            let config = try options.loadOrExit(then: "Error: not sent: the running gateway would refuse this file and keep its configuration")
            guard let asked = AdminClient.endpoint(askingListener: config.adminListen) else {
                var stderr = StandardError()
                print("Error: \(options.path): admin_listen \(config.adminListen) has port 0, which no file can name: give --admin", to: &stderr)
                throw ExitCode(1)
            }
            endpoint = asked
        }
        let (status, body) = try await AdminClient.request("POST", path: "/reload", to: endpoint)
        print(body, terminator: body.hasSuffix("\n") ? "" : "\n")
        if let problem = AdminClient.reloadAnswerProblem(status: status, from: endpoint) {
            var stderr = StandardError()
            print("Error: \(problem)", to: &stderr)
        }
        if status != 200 { throw ExitCode(1) }
    }
}

struct Healthcheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Exit 0 when a running gateway's admin listener answers GET /healthz (or --path) with 200 (for Docker's HEALTHCHECK).")

    @Option(name: .long, help: "The gateway's admin listener (host:port).")
    var admin: String = "127.0.0.1:9090"

    @Option(name: .long, help: "Admin path to ask: /healthz (alive) or /readyz (ready for traffic).")
    var path: String = "/healthz"

    func validate() throws {
        if let problem = AdminClient.pathProblem(path) { throw ValidationError(problem) }
    }

    func run() async throws {
        guard let endpoint = SocketEndpoint.parse(admin) else {
            throw ValidationError("--admin: expected host:port such as 127.0.0.1:9090")
        }
        do {
            let (status, body) = try await AdminClient.request("GET", path: path, to: endpoint)
            print(body.trimmingCharacters(in: .whitespacesAndNewlines))
            if status != 200 { throw ExitCode(1) }
        } catch let error as ExitCode {
            throw error
        } catch {
            print(error is AdminClient.Failure ? "\(error)" : "\(admin): \(error)")
            throw ExitCode(1)
        }
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a config file; exit non-zero listing every error with its key path.")

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Do not resolve the upstreams' host names (a file for another network, such as a Kubernetes ConfigMap).")
    var noResolve = false

    @Flag(name: .customLong("print"), help: "Print the configuration it gives, every key with defaults and environment overrides applied, as YAML on standard output (secrets redacted).")
    var printConfig = false

    @Flag(name: .long, help: "With --print: print cluster.password, the password in cluster.redis_url and demo.jwt_secret as they are.")
    var showSecrets = false

    func validate() throws {
        if showSecrets && !printConfig { throw ValidationError("--show-secrets goes with --print") }
    }

    func run() async throws {
        let path = options.path
        var stderr = StandardError()
        let config = try options.loadOrExit()
        let source = FileManager.default.fileExists(atPath: path) ? path : "built-in defaults (\(path) not found)"
        // Then what the file needs from this machine: names that resolve, TLS files that load.
        let problems = StartupProblems.check(config, resolve: !noResolve)
        if !problems.isEmpty {
            print("\(source): \(problems.count) error(s)\n\(problems.map { "  - \($0)" }.joined(separator: "\n"))", to: &stderr)
            throw ExitCode(1)
        }
        for warning in StartupProblems.warnings(config, resolve: !noResolve) { print("warning: \(warning)", to: &stderr) }
        for warning in ConfigLoader.environmentWarnings(ProcessInfo.processInfo.environment) { print("warning: \(warning)", to: &stderr) }
        // An empty upstream list runs the built-in demo (demo.enabled): say so, as a file
        // whose list a template left empty would otherwise pass looking like a real one.
        let demo = config.upstreams.isEmpty ? " (the built-in demo: the file lists none; demo.enabled: false refuses that)" : ""
        let verdict = "\(source): OK — listen \(config.listen), \(config.effectiveUpstreams.count) upstream(s)\(demo)"
        guard printConfig else {
            print(verdict)
            return
        }
        // Standard output is the YAML alone (`check-config --print > effective.yaml`); the verdict goes beside it.
        print(verdict, to: &stderr)
        let document = ConfigDocument(config, showSecrets: showSecrets)
        let header = document.header(
            "effective configuration of \(source): every key, defaults included", environment: ProcessInfo.processInfo.environment)
        print(document.yaml(header: header), terminator: "")
    }
}

struct DemoUpstream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-upstream", abstract: "Run one demo upstream (the Fluxor API) on its own.")

    @Option(name: .long, help: "Port to listen on.") var port: Int = 9001
    @Option(name: .long, help: "Instance name, returned in X-Upstream-Instance.") var instance: String = "a"
    @Option(name: .long, help: "Address to bind.") var host: String = "127.0.0.1"
    @Option(name: .long, help: "Event loop threads (0 = one per core).") var workers: Int = 0
    @Option(name: .long, help: "Requests served concurrently at full speed; beyond it they share the instance.")
    var capacity: Int = 5000
    @Option(name: .customLong("latency-ms"), help: "Mean service time per request in milliseconds (0 = answer at once).")
    var latencyMs: Double = 0
    @Option(name: .customLong("jitter-ms"), help: "Service time varies uniformly within ± this many milliseconds.")
    var jitterMs: Double = 0
    @Option(name: .customLong("max-inflight"), help: "Refuse with 503 + Retry-After beyond this many in flight (0 = never).")
    var maxInFlight: Int = 0
    @Flag(name: .customLong("fail-health"), help: "Start with the health check failing (POST /admin/health/recover from loopback to recover).")
    var failHealth = false
    @Option(name: .customLong("jwt-secret"), help: "HS256 secret for login tokens (env FLUXOR_JWT_SECRET); the default is public, demo only.")
    var jwtSecret: String?
    @Option(name: .customLong("log-format"), help: "text or json (one JSON object per line, as the gateway's log_format: json); without it FLUXGATE_LOG_FORMAT, else text.")
    var logFormat: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard !instance.isEmpty else { throw ValidationError("--instance must not be empty") }
        guard capacity >= 1 else { throw ValidationError("--capacity must be at least 1") }
        guard latencyMs >= 0, jitterMs >= 0, jitterMs <= latencyMs else {
            throw ValidationError("--latency-ms and --jitter-ms must be >= 0, jitter at most latency")
        }
        guard maxInFlight >= 0 else { throw ValidationError("--max-inflight must be >= 0") }
        if let logFormat, LogFormat(rawValue: logFormat) == nil {
            throw ValidationError("--log-format must be text or json, got \"\(logFormat)\"")
        }
    }

    func run() async throws {
        // The gateway's writer, so that a stack of gateway and demo containers gives a log
        // collector one format (until 2026-12-07 the demo wrote swift-log's text lines only).
        let format = logFormat.flatMap(LogFormat.init(rawValue:)) ?? LogFormat.overridden(in: ProcessInfo.processInfo.environment) ?? .text
        let levelSwitch = ApplicationLogSwitch(format: format)
        LoggingSystem.bootstrap { label in levelSwitch.makeHandler(label: label) }
        let logger = Logger(label: "fluxor-demo")
        let environment = ProcessInfo.processInfo.environment
        if logFormat == nil, let value = environment[LogFormat.environmentVariable], LogFormat.overridden(in: environment) == nil {
            logger.warning("\(LogFormat.environmentVariable)=\(value) is not text or json; writing text")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: workers == 0 ? System.coreCount : workers)
        var configuration = DemoUpstreamServer.Configuration(port: port, instance: instance)
        configuration.host = host
        configuration.capacity = capacity
        configuration.latency = .microseconds(Int64((latencyMs * 1000).rounded()))
        configuration.jitter = .microseconds(Int64((jitterMs * 1000).rounded()))
        configuration.maxInFlight = maxInFlight
        configuration.failHealth = failHealth
        if let secret = jwtSecret ?? ProcessInfo.processInfo.environment["FLUXOR_JWT_SECRET"] {
            configuration.jwtSecret = secret
        }
        let server = DemoUpstreamServer(configuration: configuration, group: group, logger: logger)
        try await server.start()
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await serviceGroup.run()
        try await group.shutdownGracefully()
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandle.standardError.write(Data(string.utf8))
    }
}
