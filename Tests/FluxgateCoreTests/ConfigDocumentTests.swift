import Foundation
import Testing
import Yams

@testable import FluxgateCore

/// The configuration in force written back as YAML (`check-config --print`, admin
/// `GET /config`): read again it must give the same configuration, key for key.
struct ConfigDocumentTests {
    /// A file that sets every key to something other than its default (a readable file
    /// where a key names one), with strings a careless writer would mangle.
    static func everyKeyChanged(file: String, directory: String) -> String {
        """
        listen: "127.0.0.2:18080"
        admin_listen: "[::1]:19090"
        workers: 3
        upstreams:
          - name: "null"
            url: "http://127.0.0.1:9001"
            max_concurrency: 40
            weight: 7
            addresses: first
            host_header: upstream
          - name: "app: two 'quoted' \\\"twice\\\" \\\\ back"
            url: "https://[::1]:8443"
            max_concurrency: 41
            weight: 2
            addresses: 5
            host_header: "api.internal:8080"
          - "http://localhost:9003"
        balancer: least_requests
        health_check:
          enabled: false
          path: "/healthz?probe=1"
          expected_statuses: [200, 204-299]
          interval: 3s
          timeout: 1500ms
          rise: 4
          fall: 5
          slow_start: 20s
          passive: { enabled: false, consecutive_failures: 9, base_ejection: 10s, max_ejection: 90s, max_ejection_percent: 33.5, panic_threshold: 0.25 }
        retry: { enabled: false, on_timeout: false, budget_percent: 5, min_concurrent: 1 }
        admission:
          target_utilization: 0.5
          queue_timeout: 250ms
          queue_discipline: lifo
          queue_delay_target: 0s
          queue_delay_interval: 50ms
          dry_run: true
          shed_at: { low: 0.7, normal: 0.9, critical: 0.99 }
          routes: [{prefix: /api/reports, priority: low}, {prefix: "/api/auth", priority: critical}]
        rate_limit:
          global: { enabled: false, dry_run: true, rate: 123.5, burst: 77, batch: 0.5, on_store_failure: closed }
          per_client: { enabled: true, dry_run: true, rate: 0.001, burst: 3, key: "header:X-API-Key", max_clients: 12 }
        timeouts:
          connect: 2s
          upstream_header: 31s
          client_header: 11s
          idle: 61s
          park_after: 0s
          client_body: 32s
          client_send: 33s
          upstream_read: 34s
          upstream_send: 35s
          request: 1m30s
          lingering_close: 250us
          tunnel_idle: 2h
          max_connection_age: 0s
        limits:
          max_header_bytes: 8k
          max_header_count: 50
          max_body_bytes: 1m
          request_buffer_bytes: 1000
          request_spool_bytes: 2g
          request_spool_dir: "\(directory)"
          stream_body_prefixes: [/api/stream, /upload]
          max_pipelined: 4
          stalled_client_bytes: 0
          max_connections: 5000
          max_connections_per_client: 9
          client_ipv6_prefix: 56
          allow_trace: true
          underscores_in_headers: true
          max_tunnels: 0
          upgrade_protocols: [websocket, my-proto]
          max_requests_per_connection: 0
        trusted_proxies: [10.0.0.0/8, "fd00::/8", 192.0.2.7]
        tls: { certificate: "\(file)", key: "\(file)", min_version: "1.3", verify_client: optional, client_ca_file: "\(file)" }
        upstream_tls: { verify: false, ca_file: "\(file)", certificate: "\(file)", key: "\(file)" }
        pool: { max_idle_per_upstream: 0, max_connections: 64, max_connecting: 2, idle_timeout: 9s, max_requests_per_connection: 7, max_connection_age: 10m }
        dns: { refresh: 0s, family: v6_only }
        access_log: { enabled: true, format: json, sample: 0.25, path: "/var/log/fluxgate access.log", flush_interval: 0s }
        log_level: debug
        log_format: json
        drain_timeout: 0s
        parser: llhttp
        abort_on_client_close: false
        reload: { watch: false, interval: 500ms }
        cluster:
          enabled: true
          redis_url: "rediss://ops:s3cret@redis.internal:6380/4"
          tls_ca_file: "\(file)"
          tls_verify: false
          tls_certificate: "\(file)"
          tls_key: "\(file)"
          key_prefix: "edge-eu"
          sync_interval: 100ms
          lease_ttl: 5s
          replica_id: "gw-7"
          password: "pa ss: word"
          connect_timeout: 1s
          command_timeout: 100ms
          share_floor: 0.5
          on_store_failure: closed
          fallback_replicas: 4
        demo:
          enabled: false
          instances: 2
          base_port: 29001
          capacity: 100
          latency: 20ms
          jitter: 5ms
          max_inflight: 50
          fail_health: true
          jwt_secret: "a-secret-of-at-least-16-bytes"
        """
    }

    static func withFiles<T>(_ body: (String, String) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-document-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("some.pem")
        try Data("-".utf8).write(to: file)
        return try body(file.path, directory.path)
    }

    /// Each key's value as written (`path = value`), lists of tables by index.
    static func leaves(_ node: Node, path: String = "") -> [String: String] {
        switch node {
        case .mapping(let mapping):
            var leaves: [String: String] = [:]
            for (key, value) in mapping {
                leaves.merge(Self.leaves(value, path: path.isEmpty ? key.string! : "\(path).\(key.string!)")) { a, _ in a }
            }
            return leaves
        case .sequence(let sequence):
            if sequence.contains(where: { $0.mapping != nil }) {
                var leaves: [String: String] = [:]
                for (index, item) in sequence.enumerated() { leaves.merge(Self.leaves(item, path: "\(path)[\(index)]")) { a, _ in a } }
                return leaves
            }
            return [path: "[" + sequence.map { $0.string ?? "?" }.joined(separator: ", ") + "]"]
        default:
            return [path: node.string ?? "?"]
        }
    }

    @Test func theDefaultsReadBackAsTheDefaults() throws {
        let text = ConfigDocument(GatewayConfig()).yaml()
        #expect(try ConfigLoader.load(yaml: text) == GatewayConfig())
    }

    /// Every key set away from its default survives the trip: print, read, compare.
    @Test func everyKeyReadsBackAsItWasLoaded() throws {
        try Self.withFiles { file, directory in
            let loaded = try ConfigLoader.load(yaml: Self.everyKeyChanged(file: file, directory: directory))
            let text = ConfigDocument(loaded, showSecrets: true).yaml()
            let again = try ConfigLoader.load(yaml: text)
            #expect(again == loaded, "\(text)")
            // The file above really moved every key: no printed value is the default's.
            let changed = Self.leaves(try #require(try Yams.compose(yaml: text)))
            let defaults = Self.leaves(try #require(try Yams.compose(yaml: ConfigDocument(GatewayConfig()).yaml())))
            for (key, value) in defaults where key != "upstreams" && key != "admission.routes" {
                #expect(changed[key] != value, "\(key) is \(value) in both")
            }
        }
    }

    /// A key the loader reads but the document leaves out would print as its default
    /// after a reload: the document writes exactly the keys the loader looks up.
    @Test func theDocumentWritesEveryKeyTheLoaderReads() throws {
        var reader = ConfigReader(environment: [:])
        _ = ConfigLoader.decode(nil, reader: &reader)
        let read = reader.consulted.union(reader.listKeys.keys)
        let written = Set(Self.leaves(try #require(try Yams.compose(yaml: ConfigDocument(GatewayConfig()).yaml()))).keys.map(ConfigReader.environmentName(for:)))
        #expect(read.subtracting(written).sorted() == [])
        #expect(written.subtracting(read).sorted() == [])
    }

    @Test func secretsAreRedactedUnlessAskedFor() throws {
        try Self.withFiles { file, directory in
            let loaded = try ConfigLoader.load(yaml: Self.everyKeyChanged(file: file, directory: directory))
            let redacted = ConfigDocument(loaded).yaml()
            for secret in ["s3cret", "pa ss: word", "a-secret-of-at-least-16-bytes"] {
                #expect(!redacted.contains(secret), "\(secret) printed")
            }
            let leaves = Self.leaves(try #require(try Yams.compose(yaml: redacted)))
            #expect(leaves["cluster.password"] == "[redacted]")
            #expect(leaves["cluster.redis_url"] == "rediss://ops:[redacted]@redis.internal:6380/4")
            #expect(leaves["demo.jwt_secret"] == "[redacted]")
            #expect(ConfigDocument(loaded, showSecrets: true).yaml().contains("s3cret"))
        }
        // Read back, a redacted secret is refused at its key, never taken for the secret.
        let refused = try Self.withFiles { file, directory in
            let printed = ConfigDocument(try ConfigLoader.load(yaml: Self.everyKeyChanged(file: file, directory: directory))).yaml()
            do {
                _ = try ConfigLoader.load(yaml: printed)
                return [String]()
            } catch let error as ConfigErrors {
                #expect(error.errors.allSatisfy { $0.message.hasPrefix("is [redacted], a printed configuration's stand-in for a secret") }, "\(error)")
                return error.errors.map(\.path)
            }
        }
        #expect(refused == ["cluster.redis_url", "cluster.password", "demo.jwt_secret"])
        // The public default secret is no secret: shown, so the operator sees it is still set.
        #expect(ConfigDocument(GatewayConfig()).yaml().contains(#"jwt_secret: "fluxor-demo-insecure-secret""#))
        // Unset stays empty, not "[redacted]".
        #expect(ConfigDocument(GatewayConfig()).yaml().contains(#"password: """#))
    }

    @Test func theEnvironmentShowsInTheDocumentAndIsNamed() throws {
        let environment = ["FLUXGATE_TIMEOUTS_IDLE": "5s", "FLUXGATE_NOT_A_KEY": "1", "PATH": "/bin", "FLUXGATE_LOG_FORMAT": "json"]
        #expect(ConfigLoader.environmentOverrides(environment) == ["FLUXGATE_LOG_FORMAT", "FLUXGATE_TIMEOUTS_IDLE"])
        let config = try ConfigLoader.load(yaml: "timeouts: { idle: 1m }", environment: environment)
        let text = ConfigDocument(config).yaml(header: ["from the environment: FLUXGATE_TIMEOUTS_IDLE"])
        #expect(text.hasPrefix("# from the environment: FLUXGATE_TIMEOUTS_IDLE\n"))
        #expect(Self.leaves(try #require(try Yams.compose(yaml: text)))["timeouts.idle"] == "5s")
    }

    /// The header names where values came from besides the file: the environment's
    /// variables, then the command line's keys (a line only when there are some), then
    /// how secrets read.
    @Test func theHeaderNamesTheEnvironmentAndTheCommandLine() {
        let document = ConfigDocument(GatewayConfig())
        #expect(document.header("t", environment: ["FLUXGATE_TIMEOUTS_IDLE": "5s"], commandLine: ["listen (serve --listen)"]) == [
            "t", "from the environment: FLUXGATE_TIMEOUTS_IDLE", "from the command line: listen (serve --listen)",
            "secrets shown as [redacted]",
        ])
        #expect(document.header("t", environment: [:]) == ["t", "no environment override", "secrets shown as [redacted]"])
        #expect(ConfigDocument(GatewayConfig(), showSecrets: true).header("t", environment: [:], commandLine: ["listen (serve --listen)"]) == [
            "t", "no environment override", "from the command line: listen (serve --listen)",
        ])
    }
}
