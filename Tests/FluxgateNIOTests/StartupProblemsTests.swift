import Foundation
import FluxgateCore
import NIOCore
import NIOPosix
import Testing

@testable import FluxgateNIO

/// What `check-config` and the start report beyond the file's own text: names that do
/// not resolve, TLS files that do not load, listeners that cannot open — each naming
/// its key, not a library's error.
struct StartupProblemsTests {
    @Test func unresolvableUpstreamsAndUnloadableTLSAreNamedByTheirKeys() throws {
        var config = try ConfigLoader.load(
            yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}, {url: \"http://no-such-host.invalid:80\"}]")
        config.tls.certificate = "/etc/hostname"
        config.tls.key = "/etc/hostname"
        let problems = StartupProblems.check(config)
        #expect(problems.count == 2, "\(problems)")
        #expect(problems.first?.path == "upstreams[1].url")
        #expect(problems.first?.message.hasPrefix("host \"no-such-host.invalid\" does not resolve: ") == true)
        #expect(problems.last?.description.hasPrefix("tls.certificate: cannot load /etc/hostname as PEM certificates") == true, "\(problems)")
        // --no-resolve (a file for another network): only the TLS problem is left.
        #expect(StartupProblems.check(config, resolve: false).map(\.path) == [""])
        config.upstreams.removeLast()
        config.tls = TLSConfig()
        #expect(StartupProblems.check(config).isEmpty)
    }

    /// More upstreams than the process has slots for (``UpstreamSlots/maxSlots``) is
    /// refused by the check as by the start — configured ones by the file's own rules,
    /// members of names with many addresses once they are looked up. Until 2026-12-06
    /// check-config passed 500 upstreams that the start refused.
    @Test func moreUpstreamsThanSlotsAreRefusedByTheCheckAsByTheStart() throws {
        let many = (0...UpstreamSlots.maxSlots).map { "{url: \"http://127.0.0.1:\(10_000 + $0)\"}" }.joined(separator: ", ")
        #expect {
            try ConfigLoader.load(yaml: "upstreams: [\(many)]")
        } throws: { error in
            "\(error)".contains("upstreams (line 1): at most \(UpstreamSlots.maxSlots) upstreams, got \(UpstreamSlots.maxSlots + 1)")
        }
        // 9 names of 32 addresses each: 288 members.
        let names = (0..<9).map { "{name: app\($0), url: \"http://app\($0).svc:80\", addresses: all}" }.joined(separator: ", ")
        let config = try ConfigLoader.load(yaml: "upstreams: [\(names)]")
        func lookup(_ host: String, _ port: Int, _ family: AddressFamilyPreference) throws -> [SocketAddress] {
            let name = Int(host.dropFirst(3).prefix { $0.isNumber })!
            return try (1...32).map { try SocketAddress(ipAddress: "10.0.\(name).\($0)", port: port) }
        }
        let problems = StartupProblems.check(config, lookup: lookup)
        #expect(problems.map(\.description) == [
            "upstreams: more than \(UpstreamSlots.maxSlots) upstreams in all, counting each address of a host name with several as one (its `addresses`)"
        ])
        #expect(StartupProblems.check(config, lookup: nil).isEmpty)  // --no-resolve cannot count members
        let fewer = try ConfigLoader.load(yaml: "upstreams: [\((0..<8).map { "{name: app\($0), url: \"http://app\($0).svc:80\", addresses: all}" }.joined(separator: ", "))]")
        #expect(StartupProblems.check(fewer, lookup: lookup).isEmpty)  // 256
    }

    /// An access log that cannot be opened for appending fails the check (and so the
    /// start), naming the key and the reason; standard output, a writable file (created
    /// as the gateway would) and a disabled log pass.
    @Test func anAccessLogThatCannotOpenIsNamed() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        config.accessLog.enabled = true
        config.accessLog.path = "/nonexistent-fluxgate-dir/access.log"
        #expect(StartupProblems.check(config).map(\.description) == [
            "access_log.path: cannot open /nonexistent-fluxgate-dir/access.log for appending: no such file or directory (errno 2)"
        ])
        config.accessLog.enabled = false
        #expect(StartupProblems.check(config).isEmpty)
        config.accessLog.enabled = true
        config.accessLog.path = "-"
        #expect(StartupProblems.check(config).isEmpty)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fluxgate-access-\(UInt64.random(in: 0...UInt64.max)).log").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        config.accessLog.path = file
        #expect(StartupProblems.check(config).isEmpty)
        #expect(FileManager.default.fileExists(atPath: file))
    }

    /// check-config warns (and passes) when a name lists more addresses than its
    /// `addresses` takes; not for `first`, not for an IP address, not within the limit.
    @Test func aNameListingMoreAddressesThanItTakesIsWarnedOf() throws {
        var config = try ConfigLoader.load(
            yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}, {url: \"http://app.svc:80\", addresses: 2}, {url: \"http://one.svc:80\", addresses: first}]")
        func lookup(_ host: String, _ port: Int, _ family: AddressFamilyPreference) throws -> [SocketAddress] {
            try ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map { try SocketAddress(ipAddress: $0, port: port) }
        }
        #expect(
            StartupProblems.warnings(config, lookup: lookup, now: 0) == [
                "upstreams[1].addresses: host \"app.svc\" lists 3 addresses and 2 are taken; the others get no traffic (raise upstreams[1].addresses, at most 128)"
            ])
        config.upstreams[1].maxAddresses = 3
        #expect(StartupProblems.warnings(config, lookup: lookup, now: 0).isEmpty)
    }

    /// check-config and the start warn of `upstream_tls` set while no upstream is
    /// `https://` (its files read for nothing; an upstream meant as https spoken to in
    /// clear); not once one is, not at its defaults.
    @Test func upstreamTLSWithoutAnHTTPSUpstreamIsWarnedOf() throws {
        var config = try ConfigLoader.load(yaml: "upstreams: [{url: \"http://127.0.0.1:9\"}]")
        #expect(StartupProblems.warnings(config, lookup: nil, now: 0).isEmpty)
        (config.upstreamTLS.certificate, config.upstreamTLS.key) = ("/c.pem", "/k.pem")
        #expect(StartupProblems.warnings(config, lookup: nil, now: 0) == [
            "upstream_tls.certificate: no upstream is https://, so it does nothing (an upstream meant as https:// but written http:// is spoken to in clear)"
        ])
        config.upstreamTLS.caFile = "/ca.pem"
        #expect(StartupProblems.warnings(config, lookup: nil, now: 0).first?.hasPrefix("upstream_tls.certificate, upstream_tls.ca_file: no upstream is https://, so they do nothing") == true)
        config.upstreams.append(try ConfigLoader.load(yaml: "upstreams: [{url: \"https://127.0.0.1:9\"}]").upstreams[0])
        #expect(StartupProblems.warnings(config, lookup: nil, now: 0).isEmpty)
    }

    /// `dns.family` on the real resolver: `localhost` has 127.0.0.1 on every machine
    /// (and `::1` on most, listed first — which made an upstream `http://localhost:PORT`
    /// on a server listening on 127.0.0.1 unreachable before `v4_preferred`); an IP
    /// address is used as written whatever the family; no usable address is named.
    @Test func upstreamNamesResolveByTheFamilyPreference() throws {
        let v4 = try SocketAddress(ipAddress: "127.0.0.1", port: 80)
        #expect(try AddressLookup.address("localhost", port: 80, family: .v4Preferred) == v4)
        #expect(try AddressLookup.candidates("localhost", port: 80, family: .v4Only) == [v4])
        #expect(try AddressLookup.candidates("::1", port: 80, family: .v4Only) == [try SocketAddress(ipAddress: "::1", port: 80)])
        let none = AddressLookup.Unresolved(host: "db", reason: AddressFamilyPreference.v6Only.noAddressReason)
        #expect(StartupProblems.unresolvable("db", none) == "host \"db\" has no IPv6 address (dns.family is v6_only)")
    }

    @Test func aListenerThatCannotOpenIsNamed() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let taken = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = taken.localAddress!.port!
        let config = try makeConfig(upstreams: ["http://127.0.0.1:9"]) { $0.listen = SocketEndpoint(host: "127.0.0.1", port: port) }
        let gateway = try GatewayServer(config: config, group: group, logger: .init(label: "test"))
        do {
            _ = try await gateway.start()
            Issue.record("the gateway started on a port in use")
        } catch {
            #expect("\(error)" == "listen 127.0.0.1:\(port): address already in use (errno 98)")
        }
        try await taken.close()
        try await group.shutdownGracefully()
    }

    /// A listener given by host name binds the address `dns.family` picks: `localhost`
    /// is 127.0.0.1 by default (where `/etc/hosts` lists `::1` first, NIO's own lookup
    /// bound `::1` only, unreachable for a client of 127.0.0.1).
    @Test func listenersGivenByNameBindTheFamilysAddress() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let config = try makeConfig(upstreams: ["http://127.0.0.1:9"]) {
            $0.listen = SocketEndpoint(host: "localhost", port: 0)
            $0.adminListen = SocketEndpoint(host: "localhost", port: 0)
            $0.healthCheck.enabled = false
        }
        let gateway = try GatewayServer(config: config, group: group, logger: .init(label: "test"))
        let address = try await gateway.start()
        #expect(address.ipAddress == "127.0.0.1")
        #expect(gateway.adminAddress?.ipAddress == "127.0.0.1")
        try await gateway.stop()
        // The family is the listener's too: with v6_only, `localhost` binds ::1 where the
        // machine maps it so, and is refused by name where it does not — never 127.0.0.1.
        var v6 = config
        v6.dns.family = .v6Only
        v6.adminListen = SocketEndpoint(host: "127.0.0.1", port: 0)  // an address: the data listener is what is tried
        let other = try GatewayServer(config: v6, group: group, logger: .init(label: "test"))
        do {
            #expect(try await other.start().ipAddress == "::1")
            try await other.stop()
        } catch {
            #expect("\(error)".contains("host \"localhost\" has no IPv6 address (dns.family is v6_only)"), "\(error)")
        }
        try await group.shutdownGracefully()
    }
}
