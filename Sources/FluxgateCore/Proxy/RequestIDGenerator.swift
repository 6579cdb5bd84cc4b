/// An `X-Request-ID`: the client's own, or one the gateway made.
///
/// A generated ID stays a number until its bytes are written: as a `String` its 16
/// digits are one character too many for Swift's inline small strings, which made it
/// one heap allocation per request (measured with a malloc probe, docs/PERFORMANCE.md).
public enum RequestID: Sendable, Equatable, CustomStringConvertible {
    /// Written as 16 lowercase hex digits.
    case generated(UInt64)
    /// A client-supplied value that ``RequestIDGenerator/isAcceptable(_:)`` allowed,
    /// held in place up to 64 bytes (a UUID is 36): as a `String` anything beyond 15
    /// bytes was one heap allocation per request.
    case client(InlineText)

    /// Calls `body` with the ID's UTF-8 bytes; a generated ID is formatted on the stack.
    /// Inlinable so that callers in other modules get it specialized: unspecialized,
    /// every call looked up the generic metadata of its stack buffer at run time
    /// (2 % of the gateway's user time in a profile, docs/PERFORMANCE.md).
    @inlinable
    public func withUTF8<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        switch self {
        case .client(let text):
            return try text.withUTF8(body)
        case .generated(let value):
            return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { digits in
                Self.writeHex(value, to: UnsafeMutableRawPointer(digits.baseAddress!))
                return try body(UnsafeRawBufferPointer(digits))
            }
        }
    }

    /// Bytes of the ID as written.
    public var utf8Count: Int {
        switch self {
        case .generated: 16
        case .client(let text): text.utf8Count
        }
    }

    /// A generated ID's spelling, 16 lowercase hex digits, written at `destination`
    /// (16 bytes): here and where the gateway writes heads in place.
    @inlinable
    public static func writeHex(_ value: UInt64, to destination: UnsafeMutableRawPointer) {
        for index in 0..<16 {
            let nibble = UInt8((value >> (60 - UInt64(index) * 4)) & 0xF)
            let digit = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
            destination.storeBytes(of: digit, toByteOffset: index, as: UInt8.self)
        }
    }

    public var description: String {
        withUTF8 { String(decoding: $0, as: UTF8.self) }
    }
}

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

    public mutating func nextID() -> RequestID {
        .generated(next())
    }

    /// Whether a client-supplied ID is kept: 1...200 visible ASCII characters, so it
    /// cannot inject into logs or response headers.
    public static func isAcceptable(_ id: String) -> Bool {
        var id = id
        return id.withUTF8 { isAcceptable(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// As above, on the value's bytes as they arrived.
    public static func isAcceptable(bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count > 0 && bytes.count <= 200 && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
