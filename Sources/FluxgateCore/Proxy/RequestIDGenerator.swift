/// Makes `X-Request-ID` values: 16 lowercase hex digits from a SplitMix64 sequence.
///
/// SplitMix64 (Steele, Lea, Flood 2014) is a fast, well-distributed 64-bit generator;
/// request IDs need uniqueness, not secrecy, and the system generator costs a
/// syscall per call on Linux. One generator lives per event loop, seeded from the
/// system generator, so IDs from different loops do not collide in practice.
public struct RequestIDGenerator: Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func nextID() -> String {
        let value = next()
        return String(unsafeUninitializedCapacity: 16) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for index in 0..<16 {
                let nibble = Int((value >> (60 - UInt64(index) * 4)) & 0xF)
                buffer[index] = digits.utf8Start[nibble]
            }
            return 16
        }
    }

    /// Whether a client-supplied ID is kept: 1...200 visible ASCII characters, so it
    /// cannot inject into logs or response headers.
    public static func isAcceptable(_ id: String) -> Bool {
        let count = id.utf8.count
        return count > 0 && count <= 200 && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
