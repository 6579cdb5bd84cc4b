#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IP address range in CIDR form (`10.0.0.0/8`, `2001:db8::/32`, or one address),
/// for `trusted_proxies`.
///
/// Addresses are held as 16 bytes, IPv4 as its IPv4-mapped IPv6 form, so one compare
/// covers both families (`::ffff:10.1.2.3` from a dual-stack socket matches
/// `10.0.0.0/8`). Text is parsed with the C library's `inet_pton`, the reference
/// parser, rather than by hand.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    public let bytes: [UInt8]
    /// Prefix length in bits over the 16-byte form.
    public let prefix: Int
    public let description: String

    /// `nil` unless `text` is an address or `address/prefix`.
    public static func parse(_ text: String) -> AddressRange? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = Self.address(String(parts[0])) else { return nil }
        let isV4 = !parts[0].contains(":")
        let maxBits = isV4 ? 32 : 128
        var bits = maxBits
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...maxBits).contains(value) else { return nil }
            bits = value
        }
        return AddressRange(bytes: address, prefix: isV4 ? 96 + bits : bits, description: text)
    }

    private init(bytes: [UInt8], prefix: Int, description: String) {
        self.bytes = bytes
        self.prefix = prefix
        self.description = description
    }

    /// Whether `address` (textual, either family) lies in the range.
    public func contains(_ address: String) -> Bool {
        guard let other = Self.address(address) else { return false }
        return contains(bytes: other)
    }

    func contains(bytes other: [UInt8]) -> Bool {
        var bitsLeft = prefix
        for index in 0..<16 where bitsLeft > 0 {
            let take = min(8, bitsLeft)
            let mask: UInt8 = take == 8 ? 0xFF : ~(0xFF >> UInt8(take))
            if bytes[index] & mask != other[index] & mask { return false }
            bitsLeft -= take
        }
        return true
    }

    /// The client a per-client limit counts an address as (`limits.client_ipv6_prefix`):
    /// an IPv4 address is itself; an IPv6 address is its `/ipv6Prefix` network
    /// (`2001:db8:1:2::/64`), since one IPv6 host is usually given a whole /64 and can
    /// take a fresh address from it for every connection — keyed by the full address,
    /// per-client rate limits and connection caps would not hold such a client at all.
    /// An IPv4-mapped IPv6 address is its IPv4 address. Text that is not an address is
    /// itself (it can only come from a trusted proxy's `X-Forwarded-For`).
    public static func clientKey(_ address: String, ipv6Prefix: Int) -> String {
        guard ipv6Prefix < 128, address.utf8.contains(UInt8(ascii: ":")), var bytes = Self.address(address) else { return address }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return "\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
        }
        let prefix = max(0, ipv6Prefix)
        for index in 0..<16 {
            let kept = min(8, max(0, prefix - index * 8))
            bytes[index] &= kept == 8 ? 0xFF : ~(0xFF >> UInt8(kept))
        }
        var network = in6_addr()
        withUnsafeMutableBytes(of: &network) { raw in
            for index in 0..<16 { raw[index] = bytes[index] }
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &network, &text, socklen_t(text.count)) != nil else { return address }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/\(prefix)"
    }

    /// 16 bytes, IPv4 mapped; `nil` for anything that is not an address.
    public static func address(_ text: String) -> [UInt8]? {
        var result = [UInt8](repeating: 0, count: 16)
        if text.contains(":") {
            var address = in6_addr()
            guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
            withUnsafeBytes(of: &address) { raw in
                for index in 0..<16 { result[index] = raw[index] }
            }
        } else {
            var address = in_addr()
            guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
            result[10] = 0xFF
            result[11] = 0xFF
            withUnsafeBytes(of: &address) { raw in
                for index in 0..<4 { result[12 + index] = raw[index] }
            }
        }
        return result
    }
}

extension Array where Element == AddressRange {
    /// Whether any range holds `address`.
    public func containsAddress(_ address: String) -> Bool {
        guard !isEmpty, let bytes = AddressRange.address(address) else { return false }
        return contains { $0.contains(bytes: bytes) }
    }

    /// The client behind trusted proxies: walking `X-Forwarded-For` from the right
    /// (the entry the nearest proxy added), the first address that is not itself a
    /// trusted proxy (nginx's `real_ip_recursive on`). `peer` when the peer is not
    /// trusted, and when every listed entry is trusted the left-most one. The caller
    /// says whether the peer is trusted (it knows once per connection).
    public func clientAddress(peer: String, peerTrusted: Bool, forwardedFor: [Substring]) -> String {
        guard peerTrusted else { return peer }
        var candidate = peer
        let entries = forwardedFor.flatMap { $0.split(separator: ",") }
        for entry in entries.reversed() {
            let address = entry.trimmingSpaces()
            guard AddressRange.address(address) != nil else { return candidate }
            candidate = address
            if !containsAddress(address) { return address }
        }
        return candidate
    }
}
