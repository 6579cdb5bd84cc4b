/// Request limits (`limits`).
public struct LimitsConfig: Sendable, Equatable {
    /// Request line excluded: total bytes of header names and values. Default 16384 → 431.
    public var maxHeaderBytes = 16_384
    /// Header fields in one request head; more → 431 `too_many_headers`. Default 100,
    /// Envoy's `max_headers_count` (HAProxy: `tune.http.maxhdr` 101; nginx bounds only
    /// the bytes). Upstreams often refuse a long list themselves, or spend on it.
    public var maxHeaderCount = 100
    /// Request body bytes. Default 10 MiB → 413.
    public var maxBodyBytes = 10_485_760
    /// Request bodies up to this size are read whole before the request is admitted
    /// (nginx's `proxy_request_buffering`, bounded): a slow uploader holds no admission
    /// slot. Larger bodies stream under `timeouts.client_body`. 0 turns buffering off.
    /// Default 65536.
    public var requestBufferBytes = 65_536
    /// Request bodies larger than `request_buffer_bytes` are spooled to a file and the
    /// request admitted only when the body is whole (nginx's `proxy_request_buffering
    /// on`), so a slow or stalled uploader holds no admission slot
    /// (``RequestBodyPlan``). This is the disk all spooled bodies may take at once; a
    /// body the budget cannot take streams after admission instead. 0 turns spooling
    /// off (larger bodies stream, as HAProxy and Envoy do). Default 1 GiB.
    public var requestSpoolBytes = 1_073_741_824
    /// Memory all client connections that do not keep up may hold at once: input read
    /// and queued (pipelined requests behind an answer, a body its upstream does not
    /// take), input of a request not complete (a head in parts, a body read before
    /// admission) and answers written that the client has not taken. Past it the
    /// connections stalled longest are closed (``StalledClientBudget``); each event
    /// loop holds its share. 0: no bound (each connection is still bounded on its own).
    /// Default 256 MiB.
    public var stalledClientBytes = 268_435_456
    /// Path prefixes (segment boundaries, as `admission.routes`) whose request bodies are
    /// not read ahead: admitted on the head, streamed to the upstream as they arrive —
    /// nginx's `proxy_request_buffering off` for a location. For endpoints that consume
    /// a body as it comes (a long chunked upload processed incrementally); such an upload
    /// holds its slot while it arrives. Default none.
    public var streamBodyPrefixes: [String] = []
    /// Where spooled bodies go (unnamed files, gone when closed). Empty: `$TMPDIR`,
    /// else `/tmp`. Checked to be a writable directory when spooling is on. Default empty.
    public var requestSpoolDir = ""
    /// The temporary directory of the environment the configuration was loaded in:
    /// `$TMPDIR` as the loader was given it, else `/tmp` (not a key: the loader sets it,
    /// so the configuration stays a value that reads no process state).
    public var temporaryDirectory = "/tmp"
    /// The directory spooled bodies go to: `request_spool_dir`, else ``temporaryDirectory``.
    public var spoolDirectory: String { requestSpoolDir.isEmpty ? temporaryDirectory : requestSpoolDir }
    /// Pipelined requests read ahead of the one being answered; beyond it the gateway
    /// stops reading the connection until answers go out. Default 16.
    public var maxPipelined = 16
    /// Client connections open at once; beyond it new ones are closed at accept.
    /// 0 means automatic: (descriptor limit − 64) / 2 — each proxied connection needs an
    /// upstream descriptor too — or / 3 with the embedded demo upstream
    /// (``ConnectionLimits/automaticTotal(descriptorLimit:descriptorsPerConnection:)``).
    /// Default 0 (automatic).
    public var maxConnections = 0
    /// Client connections open at once from one address (the peer address, or the
    /// client address a trusted proxy reported); beyond it new ones get 503 and a
    /// close. 0 turns it off. Default 0 (off: one-host load tests and clients behind
    /// NAT share an address).
    public var maxConnectionsPerClient = 0
    /// How much of an IPv6 address names one client for `max_connections_per_client`
    /// and the per-client rate limit (``AddressRange/clientKey(_:ipv6Prefix:)``): the
    /// /64 a host is usually given. 128 counts every address apart. Only a restart
    /// changes it (connections are counted under the key they opened with). Default 64.
    public var clientIPv6Prefix = 64
    /// Request header names containing `_` are forwarded when true; dropped when false
    /// (nginx's `underscores_in_headers off`): CGI-style apps read `X_Forwarded_For`
    /// as `X-Forwarded-For`. Default false.
    public var underscoresInHeaders = false
    /// Upgraded connections (WebSocket) open at once. They hold no admission slot once
    /// switched, so they are counted apart; an `Upgrade` beyond this is served as an
    /// ordinary request (the upgrade ignored). 0 turns upgrades off. Default 1024.
    public var maxTunnels = 1024
    /// The `Upgrade` protocols that may become tunnels (``UpgradeProtocols``); any
    /// other upgrade request is served as an ordinary request, its `Upgrade` removed.
    /// Default `websocket` alone.
    public var upgradeProtocols = UpgradeProtocols.websocketOnly
    /// `TRACE` is forwarded when true; answered 405 `trace_not_allowed` when false, as
    /// nginx answers it (Apache's `TraceEnable off`): an upstream that serves it echoes
    /// the request back with every header the gateway added — the client address, the
    /// request ID, whatever the upstream's own front adds. Default false.
    public var allowTrace = false
    /// Requests one client connection carries; the last is answered with `Connection:
    /// close` and the connection closes after it (nginx's `keepalive_requests`, same
    /// default; Envoy's `max_requests_per_connection`; ``ConnectionReuse``). 0: no
    /// bound. Default 1000.
    public var maxRequestsPerConnection = 1000
    public init() {}
}
