/// Timeouts (`timeouts`).
public struct TimeoutsConfig: Sendable, Equatable {
    /// TCP connect to an upstream. Default 5s (Envoy's `connect_timeout`); exceeded on
    /// every upstream → 504. It must outlast lost SYNs: Linux resends a SYN after 1 s and
    /// again 2 s later, and an upstream whose accept queue is full drops SYNs — with 1 s
    /// (the default until 2026-12-01) one dropped SYN failed the connect just as its
    /// resend would have succeeded, and a burst of new connections ejected every
    /// upstream (docs/RELIABILITY.md, "Connect timeout and lost SYNs").
    public var connect: Duration = .seconds(5)
    /// From the request being sent to the upstream's response head. Default 30s → 504.
    public var upstreamHeader: Duration = .seconds(30)
    /// Reading a client's request head (slowloris guard). Default 10s → 408.
    public var clientHeader: Duration = .seconds(10)
    /// Idle keep-alive on both sides (client connections, pooled upstream connections). Default 60s.
    public var idle: Duration = .seconds(60)
    /// A plain-TCP client connection idle this long between requests is parked: its
    /// NIO channel and handler are freed and its socket waits in the gateway's parking
    /// epoll until the client sends again (or `idle` runs out), costing ~0.2 KiB instead
    /// of ~2.8 (docs/ARCHITECTURE.md, "Parked connections"). 0s: never. Default 5s.
    public var parkAfter: Duration = .seconds(5)
    /// Between two reads of a request body the gateway is waiting for (nginx's
    /// `client_body_timeout`). Default 30s → 408 (or a close once the response started).
    public var clientBody: Duration = .seconds(30)
    /// Between two writes to a client that does not take its response (nginx's
    /// `send_timeout`). Default 30s → close.
    public var clientSend: Duration = .seconds(30)
    /// Between two reads of a response body (nginx's `proxy_read_timeout`). Default 30s → close.
    public var upstreamRead: Duration = .seconds(30)
    /// Between two writes of a request body to an upstream that does not take it
    /// (nginx's `proxy_send_timeout`). Default 30s → 504 (or a close).
    public var upstreamSend: Duration = .seconds(30)
    /// Whole request, head received → response end; 0s turns it off. Default 0s (off).
    public var request: Duration = .zero
    /// After an error answer with request bytes unread, how long the gateway keeps
    /// reading and discarding them (half-closed) so the answer is not lost to a TCP
    /// reset (nginx's lingering close). Default 5s.
    public var lingeringClose: Duration = .seconds(5)
    /// An upgraded connection (WebSocket) with no byte either way for this long is
    /// closed. Default 5m (Envoy's stream idle timeout).
    public var tunnelIdle: Duration = .seconds(300)
    /// A client connection this old answers its next request with `Connection: close`
    /// and closes after it (nginx's `keepalive_time`, same default; ``ConnectionReuse``):
    /// long-lived clients move to replicas added since they connected. 0s: no bound.
    /// Default 1h.
    public var maxConnectionAge: Duration = .seconds(3600)
    public init() {}

    /// The per-exchange timeouts as the pure deadline logic takes them.
    public var exchangeLimits: ExchangeDeadlines.Limits {
        .init(
            clientBody: clientBody, clientSend: clientSend, upstreamHeader: upstreamHeader, upstreamRead: upstreamRead,
            upstreamSend: upstreamSend, request: request)
    }
}
