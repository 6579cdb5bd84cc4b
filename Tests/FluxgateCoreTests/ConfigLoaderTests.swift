import Foundation
import Testing

@testable import FluxgateCore

struct ConfigLoaderTests {
    @Test func emptyFileGivesTheEmbeddedDefault() throws {
        let config = try ConfigLoader.load(yaml: "")
        #expect(config.listen == SocketEndpoint(host: "0.0.0.0", port: 8080))
        #expect(config.adminListen == SocketEndpoint(host: "127.0.0.1", port: 9090))
        #expect(config.runsEmbeddedDemo)
        #expect(config.effectiveUpstreams.map(\.url.description) == [
            "http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003",
        ])
        #expect(config.effectiveUpstreams.map(\.name) == ["demo-a", "demo-b", "demo-c"])
        #expect(config.admission.targetUtilization == 0.67)
        #expect(config.timeouts.upstreamHeader == .seconds(30))
        #expect(config.limits.maxHeaderBytes == 16_384)
        // Above the second SYN resend (1 s + 2 s): one dropped SYN must not fail a connect.
        #expect(config.timeouts.connect == .seconds(5))
    }

    /// The example file at the repository root lists every key with its default, so
    /// loading it must give exactly the built-in defaults (plus its upstream list).
    @Test func exampleFileParsesAndMatchesTheDefaults() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("gateway.conf.example"), encoding: .utf8)
        var config = try ConfigLoader.load(yaml: text)
        #expect(config.upstreams.isEmpty)
        config.upstreams = []
        #expect(config == GatewayConfig())
        for key in ConfigLoader.topLevelKeys {
            #expect(text.contains("\n\(key):") || text.hasPrefix("\(key):"), "example must document \(key)")
        }
    }

    @Test func specShapeParses() throws {
        let yaml = """
            listen: "0.0.0.0:8080"
            admin_listen: "127.0.0.1:9090"
            upstreams:
              - name: app-1
                url: "http://127.0.0.1:9001"
                max_concurrency: 5000
                weight: 1
              - url: "http://localhost:9002"
                weight: 3
            health_check: { path: /health, interval: 2s, timeout: 1s, rise: 2, fall: 3 }
            admission:
              target_utilization: 0.5
              queue_timeout: 250ms
              queue_delay_target: 0s
              queue_delay_interval: 50ms
              dry_run: true
            rate_limit:
              global:     { enabled: true, rate: 50000, burst: 10000 }
              per_client: { enabled: false, rate: 1000, burst: 2000, key: "header:X-API-Key", max_clients: 100000 }
            timeouts: { connect: 1s, upstream_header: 30s, client_header: 10s, idle: 1m }
            limits: { max_header_bytes: 16384, max_body_bytes: 10485760 }
            demo: { enabled: true, instances: 3, base_port: 9001 }
            """
        let config = try ConfigLoader.load(yaml: yaml)
        #expect(config.upstreams.count == 2)
        #expect(config.upstreams[0].name == "app-1")
        #expect(config.upstreams[1].name == "localhost:9002")
        #expect(config.upstreams[1].weight == 3)
        #expect(config.admission.queueTimeout == .milliseconds(250))
        #expect(config.admission.controllerSettings.queueDelayTarget == .zero)
        #expect(config.admission.controllerSettings.queueDelayInterval == .milliseconds(50))
        #expect(config.admission.dryRun)
        #expect(config.rateLimit.perClient.key == "header:X-API-Key")
        #expect(config.timeouts.idle == .seconds(60))
        #expect(!config.runsEmbeddedDemo)
        #expect(config.effectiveUpstreams.count == 2)
    }

    @Test func healthRetryAndPoolKeysParseAndAreChecked() throws {
        let config = try ConfigLoader.load(yaml: """
            health_check: { enabled: false, slow_start: 30s, passive: { consecutive_failures: 3, base_ejection: 10s, max_ejection: 1m, max_ejection_percent: 34, panic_threshold: 0 } }
            retry: { budget_percent: 10, min_concurrent: 1, on_timeout: false }
            pool: { max_connections: 64, max_connecting: 0, idle_timeout: 2s }
            """)
        #expect(!config.healthCheck.enabled)
        #expect(config.healthCheck.slowStart == .seconds(30))
        #expect(config.healthCheck.policy.consecutiveFailures == 3)
        #expect(config.healthCheck.policy.maxEjection == .seconds(60))
        #expect(config.healthCheck.policy.panicThreshold == 0)
        #expect(config.healthCheck.policy.maxEjectionPercent == 34 && GatewayConfig().healthCheck.policy.maxEjectionPercent == 10)
        #expect(config.healthCheck.recoveryEstimate == .seconds(10))  // no probes: the first cool-down
        #expect(config.retry.budgetPercent == 10 && config.retry.minConcurrent == 1 && !config.retry.onTimeout)
        #expect(config.pool.maxConnections == 64 && config.pool.idleTimeout == .seconds(2))
        #expect(config.pool.maxConnecting == 0 && GatewayConfig().pool.maxConnecting == 64)
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "pool: { max_connecting: -1 }") }
        #expect(GatewayConfig().healthCheck.recoveryEstimate == .seconds(4))  // rise 2 × interval 2 s

        do {
            _ = try ConfigLoader.load(yaml: """
                health_check: { passive: { panic_threshold: 2, max_ejection_percent: 150, base_ejection: 10m, max_ejection: 1m } }
                retry: { budget_percent: 150 }
                """)
            Issue.record("expected errors")
        } catch {
            #expect(error.errors.map(\.path) == [
                "health_check.passive.max_ejection_percent", "health_check.passive.panic_threshold", "retry.budget_percent",
                "health_check.passive.max_ejection",
            ])
        }
    }

    @Test func balancerParsesAndIsChecked() throws {
        #expect(GatewayConfig().balancer == .roundRobin)
        #expect(try ConfigLoader.load(yaml: "balancer: least_requests").balancer == .leastRequests)
        do {
            _ = try ConfigLoader.load(yaml: "balancer: random")
            Issue.record("accepted balancer: random")
        } catch {
            #expect(error.errors.map(\.path) == ["balancer"])
            #expect(error.errors.first?.message.contains("round_robin or least_requests") == true)
        }
    }

    /// `dns.refresh`: 30 s by default, 0s turns it off, anything between is refused;
    /// `dns.family`: v4_preferred by default, the four names only.
    @Test func dnsRefreshParsesAndIsChecked() throws {
        #expect(GatewayConfig().dns.refresh == .seconds(30))
        #expect(try ConfigLoader.load(yaml: "dns: { refresh: 0s }").dns.refresh == .zero)
        #expect(try ConfigLoader.load(yaml: "dns: { refresh: 5m }").dns.refresh == .seconds(300))
        #expect(try ConfigLoader.load(yaml: "dns: { refresh: 5m }").changedSections(from: GatewayConfig()) == ["dns"])
        #expect(GatewayConfig().dns.family == .v4Preferred)
        #expect(try ConfigLoader.load(yaml: "dns: { family: auto }").dns.family == .auto)
        #expect(try ConfigLoader.load(yaml: "dns: { family: V6_ONLY }").dns.family == .v6Only)
        for bad in ["dns: { refresh: 500ms }", "dns: { refresh: soon }", "dns: { refesh: 1s }", "dns: { family: ipv4 }"] {
            do {
                _ = try ConfigLoader.load(yaml: bad)
                Issue.record("accepted \(bad)")
            } catch {
                #expect(error.errors.first?.path.hasPrefix("dns.") == true, "\(error)")
            }
        }
    }

    @Test func reportsEveryErrorWithItsKeyPath() throws {
        let yaml = """
            listen: "nowhere"
            lissen: ":1"
            upstreams:
              - url: "https://secure:443/path"
              - { url: "http://127.0.0.1:9002", weight: 0 }
              - name: x
            admission: { target_utilization: 1.5, queue_timeout: 5, queue_delay_interval: 0s }
            timeouts: { connect: fast }
            limits: { max_body_bytes: -1 }
            """
        let errors: [ConfigError]
        do {
            _ = try ConfigLoader.load(yaml: yaml)
            Issue.record("expected errors")
            return
        } catch {
            errors = error.errors
        }
        let paths = errors.map(\.path)
        #expect(paths == [
            "listen", "lissen", "upstreams[0].url", "upstreams[1].weight", "upstreams[2].url",
            "admission.target_utilization", "admission.queue_timeout", "admission.queue_delay_interval", "timeouts.connect",
            "limits.max_body_bytes",
        ])
        #expect(errors[1].message == #"unknown key; did you mean "listen"?"#)
        #expect(errors[1].line == 2)
        #expect(errors[2].message.contains("without path, query or credentials"))
        #expect(errors[5].description == #"admission.target_utilization (line 7): must be in (0, 1], got "1.5""#)
        #expect(errors[6].message.contains("a duration such as 500ms"))
    }

    /// `upstream_tls.certificate` and `key` (a client certificate for `https://`
    /// upstreams) go together, as `tls`'s do; both are files that must be readable.
    @Test func upstreamClientCertificateAndKeyGoTogether() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("client-\(UUID().uuidString).pem").path
        try Data("-".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let both = try ConfigLoader.load(yaml: "upstream_tls: { certificate: \"\(file)\", key: \"\(file)\" }")
        #expect(both.upstreamTLS.presentsCertificate && both.filesReadOnReload == [file, file])
        #expect(!GatewayConfig().upstreamTLS.presentsCertificate && GatewayConfig().filesReadOnReload.isEmpty)
        for yaml in ["upstream_tls: { certificate: \"\(file)\" }", "upstream_tls: { key: \"\(file)\" }"] {
            #expect(Self.errors(yaml).map(\.description) == [
                "upstream_tls: certificate and key go together: set both (a client certificate for https:// upstreams) or neither"
            ], "\(yaml)")
        }
        #expect(Self.errors("upstream_tls: { certificate: /nonexistent/c.pem, key: /nonexistent/k.pem }").map(\.path) == [
            "upstream_tls.certificate", "upstream_tls.key",
        ])
    }

    /// `tls.verify_client` (nginx's words, and YAML's booleans) and `tls.client_ca_file`
    /// go together, on a TLS listener: either without the other is refused, naming the
    /// key that is missing or off.
    @Test func clientCertificateVerificationNeedsItsCAFileAndTLS() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ca-\(UUID().uuidString).pem").path
        try Data("-".utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let tls = "certificate: \"\(file)\", key: \"\(file)\""
        for (written, mode) in [("on", TLSConfig.ClientVerification.on), ("true", .on), ("optional", .optional)] {
            let config = try ConfigLoader.load(yaml: "tls: { \(tls), verify_client: \(written), client_ca_file: \"\(file)\" }")
            #expect(config.tls.verifyClient == mode && config.tls.clientCAFile == file)
            #expect(config.filesReadOnReload == [file, file, file], "the CA file is read again on reload and watched")
        }
        #expect(try ConfigLoader.load(yaml: "tls: { \(tls), verify_client: false }").tls.verifyClient == .off)
        #expect(GatewayConfig().tls.verifyClient == .off)
        #expect(Self.errors("tls: { \(tls), verify_client: on }").map(\.description) == [
            "tls.client_ca_file: is required with verify_client: on (the CA certificates a client's certificate must chain to)"
        ])
        #expect(Self.errors("tls: { \(tls), client_ca_file: \"\(file)\" }").map(\.path) == ["tls.verify_client"])
        #expect(Self.errors("tls: { verify_client: optional, client_ca_file: \"\(file)\" }").map(\.description) == [
            "tls.verify_client: needs TLS on the listener (tls.certificate and tls.key)"
        ])
        #expect(Self.errors("tls: { \(tls), verify_client: always, client_ca_file: \"\(file)\" }").map(\.path) == ["tls.verify_client"])
    }

    /// The loader's errors for `yaml`; empty when it loads.
    static func errors(_ yaml: String) -> [ConfigError] {
        do {
            _ = try ConfigLoader.load(yaml: yaml)
            return []
        } catch {
            return error.errors
        }
    }

    /// YAML merge keys and anchors, as Compose files use them: settings shared by
    /// upstreams through `<<: *defaults` (the entry's own keys win, then the earlier
    /// merged mapping's), the anchor kept under a top-level `x-` key that is never read;
    /// a merged key the reader does not know is refused at the anchor's line, and a merge
    /// of something that is not a mapping is refused by name.
    @Test func mergeKeysShareSettingsAndExtensionFieldsAreIgnored() throws {
        let yaml = """
            x-defaults: &defaults
              max_concurrency: 50
              weight: 2
            x-heavy: &heavy
              weight: 9
              host_header: "api.internal"
            upstreams:
              - <<: *defaults
                url: "http://127.0.0.1:9001"
              - <<: *defaults
                url: "http://127.0.0.1:9002"
                weight: 5
              - <<: [*heavy, *defaults]
                url: "http://127.0.0.1:9003"
            timeouts:
              <<: { connect: 2s, idle: 30s }
              idle: 40s
            """
        let config = try ConfigLoader.load(yaml: yaml)
        #expect(config.upstreams.map(\.maxConcurrency) == [50, 50, 50])
        #expect(config.upstreams.map(\.weight) == [2, 5, 9])
        #expect(config.upstreams[2].hostHeader == .fixed("api.internal"))
        #expect(config.upstreams[0].hostHeader == .client)
        #expect(config.timeouts.connect == .seconds(2) && config.timeouts.idle == .seconds(40))
        // Read back from --print's document: the merges come out spelt in full.
        #expect(try ConfigLoader.load(yaml: ConfigDocument(config).yaml()) == config)

        func errors(_ yaml: String) -> [String] { Self.errors(yaml).map(\.description) }
        #expect(errors("x-d: &d\n  max_concurency: 5\nupstreams:\n  - <<: *d\n    url: \"http://h:1\"\n") == [
            #"upstreams[0].max_concurency (line 2): unknown key; did you mean "max_concurrency"? (merged in by <<)"#
        ])
        #expect(errors("upstreams:\n  - <<: 5\n    url: \"http://h:1\"\n") == [
            "upstreams[0].<< (line 2): a merge key takes a mapping or a list of mappings, such as <<: *defaults"
        ])
        // Only a plain << merges; "<<" quoted is a key like any other, and x- keys are
        // ignored at the top level only.
        #expect(errors("timeouts: { \"<<\": { idle: 1s } }\n").first?.hasPrefix("timeouts.<< (line 1): unknown key") == true)
        #expect(errors("timeouts: { x-idle: 1s }\n").first?.hasPrefix("timeouts.x-idle (line 1): unknown key") == true)
        // Aliases repeated inside merges: ten mappings, each merging the one before ten
        // times, would be 10⁸ pairs — refused by name instead (it ran out of memory).
        var bomb = "x-m0: &m0 { connect: 1s, idle: 2s }\n"
        for level in 1...8 {
            bomb += "x-m\(level): &m\(level) { <<: [\(Array(repeating: "*m\(level - 1)", count: 10).joined(separator: ", "))] }\n"
        }
        #expect(errors(bomb + "timeouts: *m8\n") == [
            "timeouts.<< (line 9): merges bring in more than 10000 keys (an alias repeated inside merges?)"
        ])
        // Nested merges within the bound are fine: 2 keys through three levels.
        #expect(try ConfigLoader.load(yaml: "x-a: &a { connect: 1s }\nx-b: &b { <<: *a, idle: 2s }\nx-c: &c { <<: *b }\ntimeouts: { <<: *c }\n").timeouts.idle == .seconds(2))
    }

    /// `limits.stalled_client_bytes`: 256 MiB by default, 0 for no bound, and a value
    /// too small to hold one stalled connection refused by name.
    @Test func stalledClientBytesParsesAndRefusesTooSmall() throws {
        #expect(try ConfigLoader.load(yaml: "").limits.stalledClientBytes == 268_435_456)
        #expect(try ConfigLoader.load(yaml: "limits: { stalled_client_bytes: 0 }").limits.stalledClientBytes == 0)
        #expect(try ConfigLoader.load(yaml: "limits: { stalled_client_bytes: 1048576 }").limits.stalledClientBytes == 1_048_576)
        expectRefused(limit: "stalled_client_bytes", ["65536", "-1", "lots"])
    }

    /// `upstreams[i].addresses`: `all` (32) by default, `first` is 1, a number in
    /// 1...128; a `#` in a name is refused (it names a name's members: app#2).
    @Test func upstreamAddressesParseAndNamesKeepHashForMembers() throws {
        func load(_ entry: String) throws(ConfigErrors) -> UpstreamConfig {
            try ConfigLoader.load(yaml: "upstreams: [ { url: \"http://app.local:9001\"\(entry) } ]").upstreams[0]
        }
        #expect(try load("").maxAddresses == 32)
        #expect(try load(", addresses: all").maxAddresses == 32)
        #expect(try load(", addresses: First").maxAddresses == 1)
        #expect(try load(", addresses: 100").maxAddresses == 100)
        for (entry, path) in [
            (", addresses: 0", "upstreams[0].addresses"), (", addresses: 129", "upstreams[0].addresses"),
            (", addresses: some", "upstreams[0].addresses"), (", name: \"app#2\"", "upstreams[0].name"),
        ] {
            do {
                _ = try load(entry)
                Issue.record("\(entry) was accepted")
            } catch {
                #expect(error.errors.map(\.path) == [path], "\(entry)")
                #expect(error.errors.first?.message.contains(path.hasSuffix("name") ? "#" : "all, first") == true, "\(entry)")
            }
        }
    }

    /// `upstreams[i].host_header`: the client's `Host` by default; `upstream` is the
    /// URL's host with its port unless the scheme's default (nginx's `$proxy_host`); a
    /// fixed value must be a `host[:port]`, and a bad one is named.
    @Test func upstreamHostHeaderParsesAndNamesABadValue() throws {
        func load(_ url: String, _ entry: String) throws(ConfigErrors) -> UpstreamConfig {
            try ConfigLoader.load(yaml: "upstreams: [ { url: \"\(url)\"\(entry) } ]").upstreams[0]
        }
        func host(_ url: String, _ entry: String) throws -> String? {
            let upstream = try load(url, entry)
            return upstream.hostHeader.value(for: upstream.url)
        }
        #expect(try load("http://app.local:9001", "").hostHeader == .client)
        #expect(try host("http://app.local:9001", "") == nil)
        #expect(try host("http://app.local:9001", ", host_header: upstream") == "app.local:9001")
        #expect(try host("http://app.local", ", host_header: Upstream") == "app.local")
        #expect(try host("https://app.local", ", host_header: upstream") == "app.local")
        #expect(try host("https://app.local:80", ", host_header: upstream") == "app.local:80")
        #expect(try host("http://[::1]:9001", ", host_header: upstream") == "[::1]:9001")
        #expect(try host("http://10.0.0.5:9001", ", host_header: api.internal") == "api.internal")
        #expect(try host("http://10.0.0.5:9001", ", host_header: \"api.internal:8443\"") == "api.internal:8443")
        for bad in ["\"a..b\"", "\"api internal\"", "\"h:x\"", "\"\""] {
            do {
                _ = try load("http://10.0.0.5:9001", ", host_header: \(bad)")
                Issue.record("\(bad) was accepted")
            } catch {
                #expect(error.errors.map(\.path) == ["upstreams[0].host_header"], "\(bad)")
                #expect(error.errors.first?.message.contains("client, upstream or a host[:port]") == true, "\(error)")
            }
        }
    }

    /// Each of `values` for `limits.<key>` is refused, naming that key alone.
    func expectRefused(limit key: String, _ values: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        for bad in values {
            do {
                _ = try ConfigLoader.load(yaml: "limits: { \(key): \(bad) }")
                Issue.record("\(key) \(bad) was accepted", sourceLocation: sourceLocation)
            } catch {
                #expect(error.errors.map(\.path) == ["limits.\(key)"], "\(bad)", sourceLocation: sourceLocation)
            }
        }
    }

    /// `limits.request_spool_*`: on by default (1 GiB in `$TMPDIR` or /tmp); a spool
    /// directory that is not a writable directory is refused by name while spooling is
    /// on, and not looked at while it is off.
    @Test func requestSpoolKeysParseAndTheDirectoryIsChecked() throws {
        let defaults = try ConfigLoader.load(yaml: "")
        #expect(defaults.limits.requestSpoolBytes == 1_073_741_824)
        #expect(defaults.limits.requestSpoolDir == "")
        #expect(defaults.limits.spoolDirectory == "/tmp", "no TMPDIR in the environment given")
        let fromEnvironment = try ConfigLoader.load(yaml: "", environment: ["TMPDIR": FileManager.default.currentDirectoryPath])
        #expect(fromEnvironment.limits.spoolDirectory == FileManager.default.currentDirectoryPath, "$TMPDIR of the loader's environment")

        let directory = FileManager.default.temporaryDirectory.path
        let set = try ConfigLoader.load(yaml: "limits: { request_spool_bytes: 5000, request_spool_dir: \"\(directory)\" }")
        #expect(set.limits.requestSpoolBytes == 5000)
        #expect(set.limits.spoolDirectory == directory)

        do {
            _ = try ConfigLoader.load(yaml: "limits: { request_spool_dir: /nonexistent/spool }")
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.map(\.path) == ["limits.request_spool_dir"])
            #expect(error.errors[0].message.contains("/nonexistent/spool is not a directory"))
            #expect(error.errors[0].message.contains("request_spool_bytes: 0"))
        }
        let off = try ConfigLoader.load(yaml: "limits: { request_spool_bytes: 0, request_spool_dir: /nonexistent/spool }")
        #expect(off.limits.requestSpoolBytes == 0)
        let prefixes = try ConfigLoader.load(yaml: "limits: { stream_body_prefixes: [/ingest, /api/stream] }")
        #expect(prefixes.limits.streamBodyPrefixes == ["/ingest", "/api/stream"])
        do {
            _ = try ConfigLoader.load(yaml: "limits: { stream_body_prefixes: [ingest] }")
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.map(\.path) == ["limits.stream_body_prefixes[0]"])
        }
        let file = try ConfigLoader.load(yaml: "limits: { request_buffer_bytes: 0, request_spool_dir: /etc/hostname }")
        #expect(file.limits.requestBufferBytes == 0, "no buffering at all: the directory is not used")
    }

    /// `limits.upgrade_protocols`: `websocket` alone unless listed; an empty list allows
    /// none; a name with a version or a space is refused at its index.
    @Test func upgradeProtocolsAreTokensAndDefaultToWebSocket() throws {
        #expect(try ConfigLoader.load(yaml: "").limits.upgradeProtocols == .websocketOnly)
        #expect(try ConfigLoader.load(yaml: "limits: { upgrade_protocols: [websocket, H2C] }").limits.upgradeProtocols.names == ["websocket", "h2c"])
        #expect(try ConfigLoader.load(yaml: "limits: { upgrade_protocols: [] }").limits.upgradeProtocols.names == [])
        do {
            _ = try ConfigLoader.load(yaml: "limits: { upgrade_protocols: [websocket, \"h2c/1\", \"web socket\"] }")
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.map(\.path) == ["limits.upgrade_protocols[1]", "limits.upgrade_protocols[2]"])
        }
    }

    /// `health_check.expected_statuses`: 200-399 by default; statuses and ranges within
    /// 200-599; each bad item named by its index; an empty list refused.
    @Test func expectedHealthStatusesAreStatusesOrRanges() throws {
        #expect(try ConfigLoader.load(yaml: "").healthCheck.expectedStatuses == .standard)
        let custom = try ConfigLoader.load(yaml: "health_check: { expected_statuses: [200, 204-206, \"301\"] }").healthCheck.expectedStatuses
        #expect(custom == HealthyStatuses([200...200, 204...206, 301...301]))
        #expect(custom.contains(205) && !custom.contains(302))
        #expect(custom.description == "200, 204-206, 301")
        do {
            _ = try ConfigLoader.load(yaml: "health_check: { expected_statuses: [199, 400-300, 2xx, 200-600, 204] }")
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.map(\.path) == (0..<4).map { "health_check.expected_statuses[\($0)]" })
        }
        do {
            _ = try ConfigLoader.load(yaml: "health_check: { expected_statuses: [] }")
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.map(\.path) == ["health_check.expected_statuses"])
        }
    }

    @Test func workersAutoIsOnePerCore() throws {
        #expect(try ConfigLoader.load(yaml: "workers: auto").workers == 0)
        #expect(try ConfigLoader.load(yaml: "workers: 3").workers == 3)
        #expect(try ConfigLoader.load(yaml: "workers: 3", environment: ["FLUXGATE_WORKERS": "auto"]).workers == 0)
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "workers: many") }
    }

    @Test func traceIsRefusedByDefault() throws {
        #expect(try ConfigLoader.load(yaml: "").limits.allowTrace == false)
        #expect(try ConfigLoader.load(yaml: "limits: { allow_trace: true }").limits.allowTrace == true)
    }

    /// `limits.max_header_count`: Envoy's default of 100, and a value outside 1...10000
    /// is refused by name.
    @Test func headerCountLimitHasADefaultAndARange() throws {
        #expect(try ConfigLoader.load(yaml: "").limits.maxHeaderCount == 100)
        #expect(try ConfigLoader.load(yaml: "limits: { max_header_count: 250 }").limits.maxHeaderCount == 250)
        expectRefused(limit: "max_header_count", ["0", "10001", "-1"])
    }

    /// nginx's `keepalive_requests` and `keepalive_time`, with nginx's defaults.
    @Test func connectionReuseBoundsHaveNginxDefaultsAndZeroTurnsThemOff() throws {
        let defaults = try ConfigLoader.load(yaml: "")
        #expect(defaults.limits.maxRequestsPerConnection == 1000)
        #expect(defaults.timeouts.maxConnectionAge == .seconds(3600))
        #expect(defaults.connectionReuse == ConnectionReuse.Limits(maxRequests: 1000, maxAge: .seconds(3600)))
        let off = try ConfigLoader.load(yaml: "limits: { max_requests_per_connection: 0 }\ntimeouts: { max_connection_age: 0s }")
        #expect(off.connectionReuse == .unbounded)
        let set = try ConfigLoader.load(yaml: "limits: { max_requests_per_connection: 100 }\ntimeouts: { max_connection_age: 10m }")
        #expect(set.connectionReuse == ConnectionReuse.Limits(maxRequests: 100, maxAge: .seconds(600)))
        expectRefused(limit: "max_requests_per_connection", ["-1", "2147483648", "many"])
        for bad in ["-1s", "60", "forever"] {
            #expect(throws: ConfigErrors.self, "\(bad)") { try ConfigLoader.load(yaml: "timeouts: { max_connection_age: \(bad) }") }
        }
    }

    /// `*:8080` and `:8080` listen on every IPv4 interface, as nginx's and HAProxy's
    /// do; until 2026-12-04 `*` went to the resolver (which answered 127.0.0.1 on one
    /// machine: loopback only, silently). An upstream's `*` is refused.
    @Test func aWildcardListenIsEveryInterface() throws {
        let config = try ConfigLoader.load(yaml: "listen: \"*:8081\"\nadmin_listen: \":9091\"")
        #expect(config.listen == SocketEndpoint(host: "0.0.0.0", port: 8081))
        #expect(config.adminListen == SocketEndpoint(host: "0.0.0.0", port: 9091))
        #expect(try ConfigLoader.load(yaml: "", environment: ["FLUXGATE_LISTEN": "*:7000"]).listen == SocketEndpoint(host: "0.0.0.0", port: 7000))
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "upstreams: [{ url: \"http://*:9000\" }]") }
    }

    /// Sizes with nginx's units and durations in several units read as an operator
    /// writes them; a decimal unit is refused with the forms that work.
    @Test func sizesAndDurationsTakeUnits() throws {
        let config = try ConfigLoader.load(yaml: """
            limits: { max_body_bytes: 10m, request_buffer_bytes: 64KiB, stalled_client_bytes: 1g, max_header_bytes: 32k }
            timeouts: { idle: 1m30s }
            """)
        #expect(config.limits.maxBodyBytes == 10 << 20 && config.limits.requestBufferBytes == 64 << 10)
        #expect(config.limits.stalledClientBytes == 1 << 30 && config.limits.maxHeaderBytes == 32 << 10)
        #expect(config.timeouts.idle == .seconds(90))
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(yaml: "limits: { max_body_bytes: 10MB }") }
        do {
            _ = try ConfigLoader.load(yaml: "limits: { max_body_bytes: 10MB }")
        } catch {
            #expect(error.errors.map(\.message) == [#"expected a size in bytes such as 65536, 64k or 1MiB, got "10MB""#])
        }
        #expect(try ConfigLoader.load(yaml: "", environment: ["FLUXGATE_LIMITS_MAX_BODY_BYTES": "2m"]).limits.maxBodyBytes == 2 << 20)
    }

    /// An upstream written as its URL alone takes every other key's default; a bad one
    /// is named once, with the URL's own message.
    @Test func anUpstreamMayBeItsURLAlone() throws {
        let config = try ConfigLoader.load(yaml: """
            upstreams:
              - http://127.0.0.1:9001
              - { url: "http://127.0.0.1:9002", weight: 3 }
            """)
        #expect(config.upstreams.map(\.url.description) == ["http://127.0.0.1:9001", "http://127.0.0.1:9002"])
        #expect(config.upstreams[0].name == "127.0.0.1:9001" && config.upstreams[0].maxConcurrency == 5000 && config.upstreams[0].weight == 1)
        #expect(config.upstreams[1].weight == 3)
        do {
            _ = try ConfigLoader.load(yaml: "upstreams: [ \"127.0.0.1:9001\" ]")
            Issue.record("a URL without a scheme was accepted")
        } catch {
            #expect(error.errors.map(\.description) == [#"upstreams[0].url (line 1): expected http://host:port or https://host:port, got "127.0.0.1:9001""#])
        }
    }

    @Test func environmentOverridesFileValues() throws {
        let config = try ConfigLoader.load(
            yaml: "admission: { target_utilization: 0.5 }\nlisten: \"0.0.0.0:1\"",
            environment: ["FLUXGATE_ADMISSION_TARGET_UTILIZATION": "0.8", "FLUXGATE_LISTEN": "127.0.0.1:7000",
                "FLUXGATE_TIMEOUTS_IDLE": "5s"])
        #expect(config.admission.targetUtilization == 0.8)
        #expect(config.listen == SocketEndpoint(host: "127.0.0.1", port: 7000))
        #expect(config.timeouts.idle == .seconds(5))
    }

    /// A `FLUXGATE_*` variable that looks meant for the configuration but names no key is
    /// warned of (a near miss with the name it missed); variables that are keys, and
    /// others' variables that look like none, are not.
    @Test func misspeltEnvironmentOverridesAreWarnedOf() {
        let warnings = ConfigLoader.environmentWarnings([
            "FLUXGATE_TIMEOUT_IDLE": "5s",  // TIMEOUTS
            "FLUXGATE_ADMISSION_TARGET_UTILISATION": "0.5",
            "FLUXGATE_LIMITS_BODY": "1m",  // a section's word, no near key
            "FLUXGATE_UPSTREAMS": "http://10.0.0.5:8080",
            "FLUXGATE_LIMITS_STREAM_BODY_PREFIXES": "/x",
            "FLUXGATE_TIMEOUTS_IDLE": "5s", "FLUXGATE_CLUSTER_PASSWORD": "p", "FLUXGATE_DEMO_JWT_SECRET": "s",  // keys
            "FLUXGATE_BIN": "/usr/local/bin/fluxgate", "FLUXGATE_REQUIRE_REDIS": "1",  // not configuration
            "PATH": "/bin",
        ])
        #expect(warnings == [
            "FLUXGATE_ADMISSION_TARGET_UTILISATION is set but names no configuration key and is ignored; did you mean FLUXGATE_ADMISSION_TARGET_UTILIZATION?",
            "FLUXGATE_LIMITS_BODY is set but names no configuration key and is ignored",
            "FLUXGATE_LIMITS_STREAM_BODY_PREFIXES is set, but limits.stream_body_prefixes is a list, set in the config file only: the variable is ignored",
            "FLUXGATE_TIMEOUT_IDLE is set but names no configuration key and is ignored; did you mean FLUXGATE_TIMEOUTS_IDLE?",
            "FLUXGATE_UPSTREAMS is set, but upstreams is a list, set in the config file only: the variable is ignored",
        ])
        #expect(ConfigLoader.environmentWarnings([:]).isEmpty)
    }

    @Test func badEnvironmentValueNamesTheVariable() {
        #expect {
            try ConfigLoader.load(yaml: "", environment: ["FLUXGATE_WORKERS": "many"])
        } throws: { error in
            "\(error)".contains("workers: expected an integer or auto, got \"many\" (from FLUXGATE_WORKERS)")
        }
    }

    @Test func noUpstreamsWithoutTheDemoIsAnError() {
        #expect {
            try ConfigLoader.load(yaml: "demo: { enabled: false }")
        } throws: { error in
            "\(error)".contains("upstreams: at least one upstream is required")
        }
    }

    @Test func malformedYAMLIsReported() {
        #expect {
            try ConfigLoader.load(yaml: "listen: [unclosed")
        } throws: { error in
            "\(error)".contains("not valid YAML")
        }
    }

    /// libyaml quotes the offending line whole: a 200 KB line is shown as a window
    /// around the caret, the caret still under the place.
    @Test func aLongLineInAYAMLErrorIsCutAroundTheCaret() throws {
        let yaml = "listen: \"127.0.0.1:8080\"\nupstreams: [" + String(repeating: "a", count: 200_000) + ": b: c]\n"
        var message = ""
        do { _ = try ConfigLoader.load(yaml: yaml) } catch { message = "\(error)" }
        #expect(message.contains("not valid YAML"))
        #expect(message.count < 600)
        let lines = message.split(separator: "\n").map(String.init)
        let quoted = try #require(lines.firstIndex { $0.hasPrefix("…") })
        let caret = try #require(lines[quoted + 1].firstIndex(of: "^"))
        let column = lines[quoted + 1].distance(from: lines[quoted + 1].startIndex, to: caret)
        #expect(Array(lines[quoted])[column] == ":")  // the colon libyaml stopped at
        // Short lines are left as they are.
        #expect(ConfigLoader.clipQuotedLines("a\nshort line\n    ^") == "a\nshort line\n    ^")
        #expect(ConfigLoader.clipQuotedLines(String(repeating: "x", count: 150)) == String(repeating: "x", count: 100) + "…")
    }

    /// A tab that indents is named as such (the YAML scanner says only "found character
    /// that cannot start any token"); one inside a value is no indentation.
    @Test func aTabThatIndentsIsNamed() {
        #expect {
            try ConfigLoader.load(yaml: "admission:\n\ttarget_utilization: 0.5\n")
        } throws: { error in
            "\(error)".contains("(YAML indents with spaces; this file indents with a tab)")
        }
        #expect {
            try ConfigLoader.load(yaml: "listen: [unclosed\t")
        } throws: { error in
            !"\(error)".contains("indents with a tab")
        }
    }

    /// A config file is read as written — with a byte-order mark and CRLF lines, or
    /// through a pipe — and a path that cannot be read says why in words, not as a
    /// Foundation error dump.
    @Test func filesPipesAndUnreadablePaths() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-config-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let latin1 = directory.appendingPathComponent("latin1.yaml")
        try Data([0x6C, 0x6F, 0x67, 0x5F, 0x6C, 0x65, 0x76, 0x65, 0x6C, 0x3A, 0x20, 0xE9, 0x0A]).write(to: latin1)
        // What loads: a Windows editor's file (byte-order mark, CRLF), and a pipe
        // (`--config <(envsubst < gateway.conf.in)`), which Foundation's String(contentsOfFile:)
        // refused as "permission denied".
        let windows = directory.appendingPathComponent("windows.yaml")
        try Data([0xEF, 0xBB, 0xBF] + Array("workers: 3\r\nadmission:\r\n  target_utilization: 0.5\r\n".utf8)).write(to: windows)
        let loaded = try ConfigLoader.load(path: windows.path, required: true, environment: [:])
        #expect(loaded.workers == 3 && loaded.admission.targetUtilization == 0.5)
        let pipe = Pipe()
        // Open until the end: only its descriptor's number is used below, and the release
        // build (lexical lifetimes off, scripts/build-release.sh) may close it after its last use.
        defer { withExtendedLifetime(pipe) {} }
        pipe.fileHandleForWriting.write(Data("workers: 2\n".utf8))
        try pipe.fileHandleForWriting.close()
        #expect(try ConfigLoader.load(path: "/dev/fd/\(pipe.fileHandleForReading.fileDescriptor)", required: true, environment: [:]).workers == 2)
        for (path, reason) in [(directory.path, "is a directory"), (latin1.path, "not UTF-8 text")] {
            do {
                _ = try ConfigLoader.load(path: path, required: true, environment: [:])
                Issue.record("\(path) loaded")
            } catch {
                #expect(error.errors.map(\.message) == ["cannot read \(path): \(reason)"])
            }
        }
    }

    @Test func wrongShapesAreReported() {
        #expect {
            try ConfigLoader.load(yaml: "upstreams: \"http://x:1\"\ntimeouts: [1, 2]\nlimits: { max_header_bytes: { a: 1 } }")
        } throws: { error in
            let text = "\(error)"
            return text.contains("upstreams (line 1): expected a list") && text.contains("timeouts (line 2): expected a mapping")
                && text.contains("limits.max_header_bytes (line 3): expected a size in bytes such as 65536, 64k or 1MiB, got a mapping")
        }
    }

    @Test func listenersOnOnePortAreRefused() throws {
        func clashes(_ yaml: String) -> [String] {
            do {
                _ = try ConfigLoader.load(yaml: yaml)
                return []
            } catch {
                return error.errors.map { "\($0.path): \($0.message)" }
            }
        }
        #expect(
            clashes("listen: \"127.0.0.1:8090\"\nadmin_listen: \"127.0.0.1:8090\"")
                == ["admin_listen: 127.0.0.1:8090 takes the port of listen (127.0.0.1:8090): each listener needs a port of its own"])
        // A wildcard takes the port on every address.
        #expect(clashes("listen: \"0.0.0.0:8090\"\nadmin_listen: \"127.0.0.1:8090\"").count == 1)
        #expect(clashes("listen: \"127.0.0.2:8090\"\nadmin_listen: \"[::]:8090\"").count == 1)
        // The embedded demo's upstreams listen on 127.0.0.1:9001-9003.
        #expect(
            clashes("listen: \"0.0.0.0:9002\"")
                == ["demo.base_port: the embedded demo upstream on 127.0.0.1:9002 takes the port of listen (0.0.0.0:9002): each listener needs a port of its own"])
        // Not clashes: other addresses of one port, other ports, the demo not running.
        #expect(clashes("listen: \"127.0.0.1:8090\"\nadmin_listen: \"127.0.0.2:8090\"").isEmpty)
        #expect(clashes("listen: \"0.0.0.0:8090\"\nadmin_listen: \"127.0.0.1:9090\"").isEmpty)
        #expect(clashes("listen: \"0.0.0.0:9002\"\nupstreams: [\"http://10.0.0.1:80\"]").isEmpty)
        #expect(clashes("listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"").isEmpty)  // each gets a free port
    }

    @Test func missingFileAtTheDefaultPathMeansDefaults() throws {
        let config = try ConfigLoader.load(path: "/nonexistent/gateway.conf", required: false, environment: [:])
        #expect(config == GatewayConfig())
        #expect(throws: ConfigErrors.self) {
            try ConfigLoader.load(path: "/nonexistent/gateway.conf", required: true, environment: [:])
        }
    }

    @Test func routePrioritiesUseTheLongestPrefixOfThePath() throws {
        let config = try ConfigLoader.load(yaml: """
            admission:
              routes:
                - { prefix: /api, priority: low }
                - { prefix: /api/auth, priority: critical }
            """)
        #expect(config.admission.priority(forTarget: "/api/auth/login?next=/x") == .critical)
        #expect(config.admission.priority(forTarget: "/api/users") == .low)
        #expect(config.admission.priority(forTarget: "/health?api") == .normal)
        #expect(GatewayConfig().admission.priority(forTarget: "/api") == .normal)
    }
}
