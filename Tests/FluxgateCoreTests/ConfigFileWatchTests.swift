import Testing

@testable import FluxgateCore

/// The file watch reloads a change once it has held still for `settle`: never a file
/// caught between a truncate and its write.
struct ConfigFileWatchTests {
    let start = MonotonicTime(nanoseconds: 1_000_000_000)

    /// Each look (milliseconds after `start`, fingerprint) and whether it reloaded.
    func looks(_ watch: inout ConfigFileWatch, _ seen: [(Int64, String?)]) -> [Bool] {
        seen.map { milliseconds, fingerprint in
            watch.observe(fingerprint, now: start.advanced(byNanoseconds: milliseconds * 1_000_000))
        }
    }

    @Test func anUnchangedFileIsNeverReloaded() {
        var watch = ConfigFileWatch(loaded: "A")
        #expect(looks(&watch, [(0, "A"), (2000, "A")]) == [false, false])
        #expect(watch.nextLook(interval: .seconds(2)) == .seconds(2))
    }

    @Test func aChangeIsReloadedOnceItHoldsStill() {
        var watch = ConfigFileWatch(loaded: "A")
        #expect(looks(&watch, [(2000, "B")]) == [false])
        #expect(watch.nextLook(interval: .seconds(2)) == .milliseconds(200))
        // Not yet 200 ms still; then reloaded, once.
        #expect(looks(&watch, [(2100, "B"), (2200, "B"), (4200, "B")]) == [false, true, false])
        #expect(watch.loaded == "B" && watch.pending == nil)
    }

    /// `cat > gateway.conf`: truncated (B, empty), then written (C): only C is loaded.
    @Test func aFileWrittenInPlaceIsReadWhole() {
        var watch = ConfigFileWatch(loaded: "A")
        #expect(looks(&watch, [(2000, "B"), (2200, "C"), (2300, "C"), (2400, "C")]) == [false, false, false, true])
        #expect(watch.loaded == "C")
    }

    @Test func aChangePutBackIsNotReloaded() {
        var watch = ConfigFileWatch(loaded: "A")
        #expect(looks(&watch, [(2000, "B"), (2200, "A"), (4200, "A")]) == [false, false, false])
        #expect(watch.pending == nil)
    }

    /// A file that disappears (nil) and stays away is a change too: the reload then says
    /// the file does not exist, and the running configuration stays.
    @Test func aRemovedFileIsAChange() {
        var watch = ConfigFileWatch(loaded: "A")
        #expect(looks(&watch, [(2000, nil), (2200, nil)]) == [false, true])
    }

    /// `SIGHUP` or `POST /reload` read the file (B) while the watch had seen it change:
    /// the watch adopts B and does not reload it a second time; a later change is still one.
    @Test func aFileReadByAnotherReloadIsNotReloadedAgain() {
        var watch = ConfigFileWatch(loaded: "A")
        #expect(looks(&watch, [(2000, "B")]) == [false])
        watch.adopt("B")
        #expect(watch.loaded == "B" && watch.pending == nil)
        #expect(looks(&watch, [(2200, "B"), (4200, "B")]) == [false, false])
        #expect(looks(&watch, [(6200, "C"), (6400, "C")]) == [false, true])
        // Adopted before the watch saw the change at all: nothing either.
        watch.adopt("D")
        #expect(looks(&watch, [(8400, "D"), (10400, "D")]) == [false, false])
    }

    /// The watch looks at the files a reload reads with the configuration: the listener's
    /// certificate and key, and the upstreams' CA file — only those the configuration names.
    @Test func theFilesAReloadReadsAreWatchedToo() {
        var config = GatewayConfig()
        #expect(config.filesReadOnReload == [])
        config.tls.certificate = "/etc/fluxgate/tls.crt"
        config.tls.key = "/etc/fluxgate/tls.key"
        #expect(config.filesReadOnReload == ["/etc/fluxgate/tls.crt", "/etc/fluxgate/tls.key"])
        config.upstreamTLS.caFile = "ca.pem"
        #expect(config.filesReadOnReload == ["/etc/fluxgate/tls.crt", "/etc/fluxgate/tls.key", "ca.pem"])
        config.tls = TLSConfig()
        #expect(config.filesReadOnReload == ["ca.pem"])
    }
}
