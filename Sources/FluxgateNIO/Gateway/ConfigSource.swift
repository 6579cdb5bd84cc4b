import FluxgateCore

/// Where the configuration is read again on reload.
public struct ConfigSource: Sendable {
    public var path: String
    public var load: @Sendable () throws(ConfigErrors) -> GatewayConfig

    public init(path: String, load: @escaping @Sendable () throws(ConfigErrors) -> GatewayConfig) {
        self.path = path
        self.load = load
    }
}
