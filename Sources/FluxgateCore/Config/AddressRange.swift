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

    func contains<Bytes: RandomAccessCollection<UInt8>>(bytes other: Bytes) -> Bool where Bytes.Index == Int {
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
        var text = text
        var result = [UInt8](repeating: 0, count: 16)
        let parsed = text.withUTF8 { utf8 in result.withUnsafeMutableBytes { parseAddress(UnsafeRawBufferPointer(utf8), into: $0) } }
        return parsed ? result : nil
    }

    /// An address's text parsed into `result` (16 bytes; IPv4 mapped), allocating
    /// nothing; false when the text is not an address. `inet_pton` reads a C string, so
    /// the text is copied to the stack with its terminator (a NUL within it refuses it).
    static func parseAddress(_ text: UnsafeRawBufferPointer, into result: UnsafeMutableRawBufferPointer) -> Bool {
        // INET6_ADDRSTRLEN - 1: the longest address text (IPv4-mapped IPv6).
        guard !text.isEmpty, text.count <= 45, !text.contains(0) else { return false }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 46) { cString in
            let raw = UnsafeMutableRawBufferPointer(cString)
            raw.copyMemory(from: text)
            raw[text.count] = 0
            if text.contains(UInt8(ascii: ":")) {
                return inet_pton(AF_INET6, cString.baseAddress!, result.baseAddress!) == 1
            }
            for index in 0..<12 { result[index] = index < 10 ? 0 : 0xFF }
            return inet_pton(AF_INET, cString.baseAddress!, result.baseAddress! + 12) == 1
        }
    }
}

extension Array where Element == AddressRange {
    /// Whether any range holds `address`.
    public func containsAddress(_ address: String) -> Bool {
        guard !isEmpty, let bytes = AddressRange.address(address) else { return false }
        return containsAddress(bytes: bytes)
    }

    /// Whether any range holds the address given as its 16 bytes (IPv4 mapped).
    func containsAddress<Bytes: RandomAccessCollection<UInt8>>(bytes: Bytes) -> Bool where Bytes.Index == Int {
        contains { $0.contains(bytes: bytes) }
    }

    /// The client behind trusted proxies: walking `X-Forwarded-For` from the right
    /// (the entry the nearest proxy added), the first address that is not itself a
    /// trusted proxy (nginx's `real_ip_recursive on`). `peer` when the peer is not
    /// trusted, and when every listed entry is trusted the left-most one. The caller
    /// says whether the peer is trusted (it knows once per connection).
    public func clientAddress(peer: String, peerTrusted: Bool, forwardedFor: [Substring]) -> String {
        // The fields' entries are their comma-separated parts in order: the values
        // joined with commas hold the same entries.
        let text: String = forwardedFor.joined(separator: ",")
        let joined = [UInt8](text.utf8)
        return joined.withUnsafeBytes { value in clientAddress(peer: peer, peerTrusted: peerTrusted) { $0(value) } }
    }

    /// As above, on the `X-Forwarded-For` values as they arrived: `forEachValue` hands
    /// each field's value, in order, to the closure it is given (each must stay valid
    /// for the whole call). Entries are split at each comma byte, spaces and tabs around
    /// them trimmed, empty ones skipped, and nothing is allocated but the returned
    /// `String` when longer than 15 bytes (an IPv4 address never is). Until 2026-12-06
    /// the client was found through arrays of `Substring`s and each entry's 16 bytes as
    /// an array: twelve allocations per request behind a trusted proxy (docs/PERFORMANCE.md).
    /// (Closures rather than a `Sequence`: with a lazy sequence from the caller, made
    /// into this module's generic function unspecialized, three allocations were left.)
    ///
    /// Walked left to right, which gives the same answer as the walk from the right:
    /// the entry that ends that walk is the last one that is not a trusted address.
    public func clientAddress(
        peer: String, peerTrusted: Bool, forwardedFor forEachValue: ((UnsafeRawBufferPointer) -> Void) -> Void
    ) -> String {
        guard peerTrusted else { return peer }
        var first: UnsafeRawBufferPointer? = nil
        /// The last entry that is not a trusted address, whether it is an address at all,
        /// and the entry after it.
        var stop: (entry: UnsafeRawBufferPointer, isAddress: Bool)? = nil
        var afterStop: UnsafeRawBufferPointer? = nil
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { scratch in
            let address = UnsafeMutableRawBufferPointer(scratch)
            forEachValue { value in
                var start = 0
                while start <= value.count {
                    let end = value[start...].firstIndex(of: UInt8(ascii: ",")) ?? value.count
                    defer { start = end + 1 }
                    guard end > start else { continue }
                    var low = start, high = end
                    while low < high, value[low] == 0x20 || value[low] == 0x09 { low += 1 }
                    while high > low, value[high - 1] == 0x20 || value[high - 1] == 0x09 { high -= 1 }
                    let entry = UnsafeRawBufferPointer(rebasing: value[low..<high])
                    if first == nil { first = entry }
                    let isAddress = AddressRange.parseAddress(entry, into: address)
                    if !isAddress || !containsAddress(bytes: UnsafeRawBufferPointer(address)) {
                        stop = (entry, isAddress)
                        afterStop = nil
                    } else if stop != nil && afterStop == nil {
                        afterStop = entry
                    }
                }
            }
        }
        let chosen: UnsafeRawBufferPointer?
        switch stop {
        case nil: chosen = first  // every entry a trusted address (or none at all: the peer)
        case (let entry, true)?: chosen = entry
        case (_, false)?: chosen = afterStop  // not an address: the entry after it, or the peer
        }
        return chosen.map { String(decoding: $0, as: UTF8.self) } ?? peer
    }
}
