/// The admission slots held by requests in flight on each upstream, on one event loop,
/// and the slots given back when an upstream leaves rotation.
///
/// A slot stands for a share of the ready upstreams' capacity `C`. When an upstream
/// leaves rotation — its probes fail, passive health ejects it, a reload removes it — `C`
/// shrinks at once, but its requests in flight went on holding their slots until they
/// ended. A *hung* upstream (accepting, never answering: a stopped process, a deadlock)
/// ends them only at `timeouts.upstream_header` (30 s): by hand, with two upstreams of
/// `max_concurrency: 50` and one stopped under load, its requests took all 67 slots
/// within a second and the gateway shed every request for as long as it hung — 12 s,
/// the healthy upstream idle (docs/results/by-hand-2026-12-08/hung-upstream-before.txt).
/// Now the slots of an upstream that leaves rotation are given back as it leaves
/// (``giveBack(_:)``); its requests run on without one and give nothing back when they
/// end. HAProxy's `maxconn` counts per server, so a hung server there holds its own
/// share; Envoy's circuit breakers count per cluster, so a hung host can hold a whole
/// cluster's `max_requests` until its timeouts (both by their documentation, not run here).
///
/// Each upstream has an epoch, moved on by every give-back; a request's ticket is the
/// epoch it attached in, so a request that attached before the give-back is known to
/// hold no slot any more. Pure and per loop: no lock, no atomic.
public struct UpstreamSlotHolders: Sendable {
    /// Requests holding a slot on each upstream, by index.
    private var held: [Int] = []
    private var epochs: [UInt32] = []

    public init() {}

    /// A request that holds a slot starts an attempt on `upstream`; returns its ticket.
    public mutating func attach(_ upstream: Int) -> UInt32 {
        grow(to: upstream)
        held[upstream] += 1
        return epochs[upstream]
    }

    /// The request that attached to `upstream` with `ticket` ends or moves on: whether it
    /// still holds its slot (false: the slot was given back when the upstream left
    /// rotation, and is not released again).
    public mutating func detach(_ upstream: Int, ticket: UInt32) -> Bool {
        guard upstream < held.count, epochs[upstream] == ticket else { return false }
        held[upstream] -= 1
        return true
    }

    /// `upstreams` left rotation: the slots their requests hold, now to be released; the
    /// requests' tickets no longer detach.
    public mutating func giveBack(_ upstreams: [Int]) -> Int {
        var released = 0
        for upstream in upstreams where upstream < held.count {
            released += held[upstream]
            held[upstream] = 0
            epochs[upstream] &+= 1
        }
        return released
    }

    /// Requests holding a slot on `upstream` now.
    public func holding(_ upstream: Int) -> Int { upstream < held.count ? held[upstream] : 0 }

    /// `picked`, or — when its requests already hold its `share` of the slots — the first
    /// upstream `next` walks to whose requests hold less than theirs (`picked` when none
    /// does). `next(u)` is the routed upstream after `u`; the walk ends when it comes back
    /// to `picked`, finds none, or has taken `limit` steps (`picked` may have left
    /// rotation, and then it would never come back to it). A hung upstream thus holds its
    /// own share of `S` until it leaves rotation, not every slot — as HAProxy's per-server
    /// `maxconn` sends the excess to other servers (by its documentation, not run here).
    public func withRoom(_ picked: Int, limit: Int, share: (Int) -> Int, next: (Int) -> Int?) -> Int {
        guard holding(picked) >= share(picked) else { return picked }
        var candidate = picked
        for _ in 0..<limit {
            guard let following = next(candidate), following != picked else { break }
            if holding(following) < share(following) { return following }
            candidate = following
        }
        return picked
    }

    private mutating func grow(to upstream: Int) {
        if upstream >= held.count {
            held += repeatElement(0, count: upstream + 1 - held.count)
            epochs += repeatElement(0, count: upstream + 1 - epochs.count)
        }
    }
}
