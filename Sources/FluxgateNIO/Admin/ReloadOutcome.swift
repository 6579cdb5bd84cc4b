/// The result of a reload, as `POST /reload` reports it and the log records it.
public struct ReloadOutcome: Sendable, Encodable {
    public var result: String
    /// The configuration version in force afterwards.
    public var version: Int
    public var errors: [String]
    public var changes: [String]

    public var succeeded: Bool { result == "success" }
}
