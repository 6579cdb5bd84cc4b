/// Cluster mode (`cluster`): several gateway replicas share one capacity `S` and one
/// global rate limit through Redis (docs/SCALING.md). Off unless the section is present.
public struct ClusterConfig: Sendable, Equatable {
    public var enabled = false
    /// `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. Default `redis://127.0.0.1:6379`.
    public var redis = RedisURL(host: "127.0.0.1", port: 6379)
    /// Prefix of every key the gateway writes. Default `fluxgate`.
    public var keyPrefix = "fluxgate"
    /// How often each replica reports demand and renews its lease. Default 250ms.
    public var syncInterval: Duration = .milliseconds(250)
    /// A replica that stops reporting loses its share after this long. Default 2s.
    public var leaseTTL: Duration = .seconds(2)
    /// This replica's name in the store. Default: host name and process id.
    public var replicaID: String? = nil
    /// Password (overrides one in the URL; `FLUXGATE_CLUSTER_PASSWORD` keeps it out of the file).
    public var password: String? = nil
    public var connectTimeout: Duration = .milliseconds(500)
    /// A command (lease renewal, token batch) not answered in this long counts as a store failure. Default 250ms.
    public var commandTimeout: Duration = .milliseconds(250)
    /// `rediss://`: PEM CAs to trust instead of the system's roots ("" = system roots).
    public var tlsCAFile = ""
    /// `rediss://`: verify the server's chain and name. Default true.
    public var tlsVerify = true
    /// `rediss://`: a client certificate (PEM chain, leaf first) for a server that asks
    /// for one — `redis-server` does by default once TLS is on (`tls-auth-clients yes`).
    /// Default empty: none.
    public var tlsCertificate = ""
    /// `rediss://`: the PEM private key of `tlsCertificate`; the two go together.
    public var tlsKey = ""
    /// A client certificate is presented to Redis (`tls_certificate` and `tls_key` set).
    public var presentsTLSCertificate: Bool { !tlsCertificate.isEmpty && !tlsKey.isEmpty }
    /// Each replica's guaranteed share as a fraction of an even split. Default 0.25.
    public var shareFloor = 0.25
    /// Capacity when Redis is unreachable past the lease: `static_share` (S / replicas) or `closed`.
    public var onStoreFailure = StoreFailurePolicy.staticShare
    /// Replicas assumed for the static share before Redis has ever answered. Default 1.
    public var fallbackReplicas = 1
    public init() {}

    public var leaseSettings: LeasePlanner.Settings {
        LeasePlanner.Settings(leaseTTL: leaseTTL, shareFloor: shareFloor, onStoreFailure: onStoreFailure, fallbackReplicas: fallbackReplicas)
    }
}

/// A parsed `redis://` URL.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String? = nil
    public var password: String? = nil
    public var database = 0
    /// `rediss://`: TLS to Redis.
    public var tls = false

    public init(host: String, port: Int, username: String? = nil, password: String? = nil, database: Int = 0, tls: Bool = false) {
        self.tls = tls
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Without the password, for logs and `/stats`.
    /// The URL without its password (for logs and errors).
    public var description: String { text(password: nil) }

    /// The URL as a config file writes it, with `password` in place of the password
    /// (``ConfigDocument`` passes the real one or its redaction marker); ``parse(_:)``
    /// reads it back.
    public func text(password: String?) -> String {
        let credentials = password.map { "\(username ?? ""):\($0)@" } ?? (username.map { "\($0)@" } ?? "")
        return "\(tls ? "rediss" : "redis")://\(credentials)\(SocketEndpoint(host: host, port: port))/\(database)"
    }

    /// nil with the reason when `text` is not a usable Redis URL.
    public static func parse(_ text: String) -> Result<RedisURL, Problem> {
        let tls = text.hasPrefix("rediss://")
        guard tls || text.hasPrefix("redis://") else { return .failure(Problem(reason: "must start with redis:// or rediss:// (TLS)")) }
        var rest = Substring(text.dropFirst(tls ? "rediss://".count : "redis://".count))
        var url = RedisURL(host: "", port: 6379, tls: tls)
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let db = Int(path), (0...15).contains(db) else { return .failure(Problem(reason: "the database after / must be 0...15")) }
                url.database = db
            }
        }
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = userinfo[..<colon]
                url.username = user.isEmpty ? nil : String(user)
                url.password = String(userinfo[userinfo.index(after: colon)...])
            } else if !userinfo.isEmpty {
                url.password = String(userinfo)
            }
        }
        guard !rest.isEmpty,
            let endpoint = SocketEndpoint.parse(rest.contains(":") && !rest.hasSuffix("]") ? String(rest) : "\(rest):6379"),
            endpoint.port > 0
        else {
            return .failure(Problem(reason: "expected redis://host:port with a port in 1...65535"))
        }
        url.host = endpoint.host
        url.port = endpoint.port
        return .success(url)
    }

    public struct Problem: Error, Equatable {
        public var reason: String
    }
}
