import FluxgateCore

#if canImport(Glibc)
import Glibc
#endif

/// Where the configuration is read again on reload.
public struct ConfigSource: Sendable {
    public var path: String
    public var load: @Sendable () throws(ConfigErrors) -> GatewayConfig
    /// Why a reload cannot read the file again, when it cannot: a pipe
    /// (`--config <(envsubst < gateway.conf.in)`) or a device is read once — read again it
    /// is empty, which would be the embedded defaults. Nil for a regular file (a symlink
    /// to one, as a Kubernetes ConfigMap mounts it, included).
    public let notReloadable: String?

    public init(path: String, load: @escaping @Sendable () throws(ConfigErrors) -> GatewayConfig) {
        self.path = path
        self.load = load
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
            notReloadable = "the configuration was read from \(path), which is not a regular file (a pipe or a device) and cannot be read again; restart the gateway to change it"
        } else {
            notReloadable = nil
        }
    }

    /// The configuration file at `path`, read again on every reload as it was at start,
    /// with `adjust` (the command line's overrides, such as `--listen`) applied after.
    /// The file must be there: a gateway started from a file is never reloaded to the
    /// built-in defaults. Until 2026-12-07 the command read it again as it reads
    /// `./gateway.conf` at start — a missing default file means "all defaults" — so a
    /// file moved away (an editor's save, a `git checkout`) was reloaded, by the watch
    /// within its interval, as the defaults, refused only because they turn the demo on,
    /// with the words `demo: changed, but only a restart applies it`; now it is
    /// refused as `config file gateway.conf does not exist`. An empty file is refused
    /// too (``ConfigLoader/load(path:required:refuseEmpty:environment:)``).
    public static func file(
        _ path: String, adjust: @escaping @Sendable (inout GatewayConfig) -> Void = { _ in }
    ) -> ConfigSource {
        ConfigSource(path: path) { () throws(ConfigErrors) in
            var config = try ConfigLoader.load(path: path, required: true, refuseEmpty: true)
            adjust(&config)
            return config
        }
    }

    /// What `reload.watch` compares: `configFile` (the configuration file's
    /// ``fingerprint(_:)``, taken apart so that a reload can take it before reading) and the
    /// fingerprints of `files`, the certificates and keys a reload reads with it
    /// (``GatewayConfig/filesReadOnReload``); a file that is not there is `absent`.
    public static func watchFingerprint(configFile: String?, files: [String]) -> String {
        ([configFile ?? "absent"] + (files.isEmpty ? [] : [filesFingerprint(files)])).joined(separator: " ")
    }

    /// The ``fingerprint(_:)``s of `files` in one string (`absent` for one not there):
    /// what a reload compares to keep a TLS context built from them (``GatewaySettings``).
    public static func filesFingerprint(_ files: [String]) -> String {
        files.map { fingerprint($0) ?? "absent" }.joined(separator: " ")
    }

    /// Which of `paths` — the configuration file, then the files it names, as they went
    /// into both ``watchFingerprint(configFile:files:)``s — differ between `old` and `new`:
    /// the watch's log line names them ("tls/cert.pem changed", not only the config file).
    /// All of them when the two do not hold the same files (a reload changed the list).
    public static func changedFiles(_ paths: [String], from old: String?, to new: String) -> [String] {
        let before = old?.split(separator: " ", omittingEmptySubsequences: false) ?? []
        let after = new.split(separator: " ", omittingEmptySubsequences: false)
        guard before.count == paths.count, after.count == paths.count else { return paths }
        return zip(paths, zip(before, after)).filter { $0.1.0 != $0.1.1 }.map(\.0)
    }

    /// One file's part of what `reload.watch` compares (``ConfigFileWatch``), and what a
    /// reload compares to keep a TLS context (``GatewaySettings``): the modification time,
    /// the change time, size, inode and device of the file `path` names — the change time
    /// because a copy that keeps the old modification time (`cp -p`, `touch -r`, `rsync
    /// -t`) over a file of the same size in place changes nothing else, and a renewed
    /// certificate must not be taken for the old one — **through symlinks** — a Kubernetes
    /// ConfigMap mounts `gateway.conf` as a link to `..data/gateway.conf`, and an update
    /// repoints `..data` at a new directory, which changes nothing about the link itself.
    /// Until 2026-12-07 this was `FileManager.attributesOfItem`, which on Linux reads the
    /// link (`lstat`): the watch never saw a ConfigMap update, nor an edit of a linked
    /// file. Nil when nothing is there.
    public static func fingerprint(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return "\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)/\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)/\(info.st_size)/\(info.st_ino)/\(info.st_dev)"
    }
}
