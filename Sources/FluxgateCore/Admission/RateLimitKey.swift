/// The key a per-client token bucket is stored under: namespaced by kind, bounded in
/// length whatever the client sent.
///
/// `ip:<address>` for the client address (at most 45 characters of IPv6 text);
/// `hdr:<32 hex digits>` for a header value, hashed, so a 16 KiB `X-API-Key` costs the
/// limiter 36 bytes and a header value can never name someone's address bucket. The
/// hash is Swift's `Hasher` (SipHash-1-3 with a per-process random seed), twice with
/// different domain bytes for 128 bits: an attacker who does not know the seed cannot
/// aim a value at another client's bucket, and chance collisions are negligible.
/// Keys are stable within a process only.
public enum RateLimitKey {
    public static func address(_ address: String) -> String {
        "ip:" + address
    }

    public static func header(_ value: String) -> String {
        var first = Hasher()
        first.combine(UInt8(1))
        first.combine(value)
        var second = Hasher()
        second.combine(UInt8(2))
        second.combine(value)
        return "hdr:" + hex(UInt64(bitPattern: Int64(first.finalize()))) + hex(UInt64(bitPattern: Int64(second.finalize())))
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
