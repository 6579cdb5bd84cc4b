/// The key a per-client token bucket is stored under: namespaced by kind, fixed in
/// size whatever the client sent, and made without allocating.
///
/// 128 bits of Swift's `Hasher` (SipHash-1-3 with a per-process random seed), run
/// twice with different domain bytes: over the client address's text for address
/// keys, over the header value's bytes for `header:` keys, with other domain bytes
/// for each kind, so a header value can never name someone's address bucket and an
/// attacker who does not know the seed cannot aim a value at another client's bucket;
/// chance collisions are negligible. A 16 KiB `X-API-Key` costs the limiter 16 bytes.
/// Keys are stable within a process only.
///
/// Until 2026-12-06 the key was a `String` (`ip:<address>`, `hdr:<32 hex digits>`):
/// building it cost a header-keyed request five heap allocations (`bench/malloc-count.sh`
/// with `MALLOC_PER_CLIENT=header`, docs/PERFORMANCE.md).
public struct ClientKey: Hashable, Sendable, ExpressibleByStringLiteral {
    let high: UInt64
    let low: UInt64

    /// The key of requests when per-client limits are off (never looked up).
    public static let none = ClientKey(high: 0, low: 0)

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An address key for `text` (tests spell keys this way).
    public init(stringLiteral text: String) { self = RateLimitKey.address(text) }

    /// The two tagged hashes of `bytes`.
    static func hashing(_ bytes: UnsafeRawBufferPointer, domain: UInt8) -> ClientKey {
        var first = Hasher()
        first.combine(domain)
        first.combine(bytes: bytes)
        var second = Hasher()
        second.combine(domain &+ 1)
        second.combine(bytes: bytes)
        return ClientKey(high: UInt64(bitPattern: Int64(first.finalize())), low: UInt64(bitPattern: Int64(second.finalize())))
    }

    static func hashing(_ text: String, domain: UInt8) -> ClientKey {
        var text = text
        return text.withUTF8 { hashing(UnsafeRawBufferPointer($0), domain: domain) }
    }
}

public enum RateLimitKey {
    /// The key of a client address, as ``AddressRange/clientKey(_:ipv6Prefix:)`` spells it.
    public static func address(_ address: String) -> ClientKey {
        ClientKey.hashing(address, domain: 3)
    }

    /// The key of a header value, from its bytes as they arrived.
    public static func header(_ value: UnsafeRawBufferPointer) -> ClientKey {
        ClientKey.hashing(value, domain: 1)
    }

    public static func header(_ value: String) -> ClientKey {
        ClientKey.hashing(value, domain: 1)
    }
}
