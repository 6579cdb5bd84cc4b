/// The `reload.watch` decision, apart from the polling: the file's fingerprint
/// (modification time, size, inode) is observed every `reload.interval`, and a change
/// reloads once the fingerprint has stayed the same for `settle` — so a writer that
/// truncates the file and then writes it (`cat > gateway.conf`, an editor that saves in
/// place) is not read half-written, which would run a partial configuration (every key
/// it no longer has at its default) until the next look. An atomic replace (a rename,
/// a Kubernetes ConfigMap's symlink swap) settles at once.
///
/// | observed (time: fingerprint) | settle 200 ms | what happens |
/// |---|---|---|
/// | 0: A, 2 s: A | — | nothing |
/// | 2 s: B, 2.2 s: B | reload at 2.2 s | one reload, of B |
/// | 2 s: B (truncated), 2.2 s: C (written), 2.4 s: C | reload at 2.4 s | one reload, of C |
/// | 2 s: B, 2.2 s: A (put back) | — | nothing |
/// | 2 s: B, a `SIGHUP` or `POST /reload` reads B, 2.2 s: B | — | nothing: B is loaded |
public struct ConfigFileWatch: Sendable {
    /// The fingerprint last loaded (at start, or by the last reload).
    public private(set) var loaded: String?
    /// A change seen and when, not yet stable for `settle`.
    public private(set) var pending: (fingerprint: String?, since: MonotonicTime)?
    public let settle: Duration

    public init(loaded: String?, settle: Duration = .milliseconds(200)) {
        self.loaded = loaded
        self.settle = settle
    }

    /// True when the caller should reload now (the change is recorded as loaded).
    public mutating func observe(_ fingerprint: String?, now: MonotonicTime) -> Bool {
        guard fingerprint != loaded else {
            pending = nil  // changed and changed back: nothing to load
            return false
        }
        guard let seen = pending, seen.fingerprint == fingerprint else {
            pending = (fingerprint, now)
            return false
        }
        guard now - seen.since >= settle else { return false }
        loaded = fingerprint
        pending = nil
        return true
    }

    /// A reload that did not come from the watch (`SIGHUP`, `POST /reload`) read the file
    /// with `fingerprint` (taken before it read): that is what is loaded now, so the watch
    /// does not reload it a second time — until 2026-12-07 it did, a second
    /// "configuration reloaded" (changes none) and a second settings version for one edit.
    /// Whether that reload applied the file or refused it: a file refused once is
    /// reloaded again when it changes, not retried unchanged.
    public mutating func adopt(_ fingerprint: String?) {
        loaded = fingerprint
        pending = nil
    }

    /// How long to wait before the next look: `settle` while a change settles, else `interval`.
    public func nextLook(interval: Duration) -> Duration {
        pending == nil ? interval : min(settle, interval)
    }
}
