import FluxgateCore
import NIOCore

/// Where a ``ProxyHandler`` gets its upstream connections and per-loop numbers: the
/// event loop's ``UpstreamPool`` in the product; in tests, a connector that hands out
/// ``UpstreamConnection``s in `EmbeddedChannel`s, so failover, retries and timeouts are
/// driven without sockets (`EmbeddedEventLoop.advanceTime`). Everything is called on
/// the connector's event loop, which is also the client connection's.
protocol UpstreamConnector: AnyObject {
    var eventLoop: any EventLoop { get }
    /// An idle keep-alive connection to `upstream`, if one is parked.
    func takeIdle(_ upstream: Int) -> UpstreamConnection?
    /// A new connection to `upstream` (possibly after waiting at the connection cap):
    /// returns the request's place in the cap's queue when it waits, for
    /// ``cancelWait(_:)`` should the request end first.
    @discardableResult
    func connect(_ upstream: Int, _ completion: @escaping (Result<UpstreamConnection, any Error>) -> Void) -> CapWait?
    /// A request that waited at the connection cap ended (its client left, its deadline
    /// passed): it leaves the queue, and its completion is never called.
    func cancelWait(_ wait: CapWait)
    /// A connection whose exchange ended cleanly, for reuse; `now` is the caller's
    /// clock reading (the idle deadline is counted from it).
    func release(_ connection: UpstreamConnection, now: MonotonicTime)
    /// The next generated `X-Request-ID` (per loop, no lock).
    func nextRequestID() -> RequestID
    /// A jitter factor in [0, 0.5) for `Retry-After` estimates.
    func nextJitter() -> Double
}

extension UpstreamPool: UpstreamConnector {}

/// A request's place in a pool's queue at the connection cap.
struct CapWait: Equatable {
    let upstream: Int
    let id: Int
}
