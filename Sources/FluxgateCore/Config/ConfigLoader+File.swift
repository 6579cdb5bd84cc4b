import Foundation

/// Reading the config file: a regular file, a symlink to one or a pipe, in UTF-8.
extension ConfigLoader {
    /// Loads `path`; a missing file at the default path means "all defaults"
    /// (the embedded demo), a missing file that was asked for by name is an error.
    /// `refuseEmpty` (a reload's reading) refuses a file with nothing but white space in
    /// it: at start an empty file is all defaults, but on reload it is far more often a
    /// file caught being rewritten (`cat new > gateway.conf`, a full disk) than one
    /// meant to put every key back to its default — `{}` says that.
    public static func load(
        path: String, required: Bool, refuseEmpty: Bool = false,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigErrors) -> GatewayConfig {
        guard FileManager.default.fileExists(atPath: path) else {
            if required {
                throw ConfigErrors(errors: [ConfigError(path: "", message: "config file \(path) does not exist")])
            }
            return try load(yaml: "", environment: environment)
        }
        let bytes: Data
        do {
            // Through a file handle, not `String(contentsOfFile:)`, which refuses what is not a
            // regular file with "permission denied": `--config <(envsubst < gateway.conf.in)`
            // hands over a pipe.
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            bytes = try handle.readToEnd() ?? Data()
        } catch {
            throw ConfigErrors(errors: [ConfigError(path: "", message: "cannot read \(path): \(readFailure(error))")])
        }
        // A byte-order mark (Windows editors write one) is not YAML content.
        let content = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? bytes.dropFirst(3) : bytes[...]
        guard let text = String(validating: content, as: UTF8.self) else {
            throw ConfigErrors(errors: [ConfigError(path: "", message: "cannot read \(path): not UTF-8 text")])
        }
        if refuseEmpty, text.allSatisfy(\.isWhitespace) {
            throw ConfigErrors(errors: [ConfigError(path: "", message: "\(path) is empty: read as it is, every key would go back to its default (write {} to mean that)")])
        }
        return try load(yaml: text, environment: environment)
    }

    /// Foundation's read error in words ("is a directory", "permission denied"), not
    /// its `NSCocoaErrorDomain Code=256 … UserInfo=…` dump.
    static func readFailure(_ error: any Error) -> String {
        let failure = error as NSError
        if let underlying = failure.userInfo[NSUnderlyingErrorKey].flatMap({ $0 as? any Error }).map({ $0 as NSError }),
            underlying.domain == NSPOSIXErrorDomain
        {
            return errnoWords(Int32(underlying.code))
        }
        if failure.domain == NSPOSIXErrorDomain { return errnoWords(Int32(failure.code)) }
        return "\(error)"
    }
}
