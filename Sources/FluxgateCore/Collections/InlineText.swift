/// UTF-8 text of up to 64 bytes stored in the value itself; longer text in a `String`.
///
/// A Swift `String` keeps at most 15 bytes inline and allocates beyond that, so a
/// request-target such as `/api/v1/orders/1234567?expand=items` or a client's
/// `X-Request-ID` (a UUID is 36 bytes) cost one heap allocation and its release per
/// request — the only ones left on the data path apart from the exchange itself
/// (`bench/malloc-count.sh` with `MALLOC_PATH`, docs/PERFORMANCE.md). Held in the
/// gateway's per-request exchange object, which is allocated anyway, the bytes cost
/// nothing more. Text arrives here already validated (by the request parser, or
/// ``RequestIDGenerator/isAcceptable(bytes:)``); this type only stores it.
///
/// The bytes are a tuple of eight `UInt64`s: a fixed-size plain value the compiler
/// copies as memory. A first form kept them in an `InlineArray<capacity, UInt8>` with
/// the capacity a generic parameter: across modules it ran unspecialized, and every copy
/// went through the array's value witness byte by byte (`NativeBox<UInt8>::initializeWithCopy`
/// in a profile) — +0.3 µs of user time per request (docs/PERFORMANCE.md).
public struct InlineText: Sendable, Equatable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// 64 bytes: a UUID request ID, most REST paths with their query. Every byte more
    /// grows the exchange twice (its target and its request ID), and an exchange
    /// beyond 1 032 bytes leaves glibc's per-thread cache of freed blocks (`tcache`): a
    /// build at 1 408-1 471 bytes read 0.941x requests on `GET /health` (docs/PERFORMANCE.md).
    public static let capacity = 64
    @usableFromInline typealias Words = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    @usableFromInline var words: Words = (0, 0, 0, 0, 0, 0, 0, 0)
    @usableFromInline var count: Int
    /// The text when it is longer than ``capacity`` (then `words` is unused).
    @usableFromInline var spilled: String?

    @inlinable
    public init(_ source: UnsafeRawBufferPointer) {
        count = source.count
        if source.count <= Self.capacity {
            spilled = nil
            if let base = source.baseAddress {
                withUnsafeMutableBytes(of: &words) { $0.baseAddress!.copyMemory(from: base, byteCount: source.count) }
            }
        } else {
            spilled = String(decoding: source, as: UTF8.self)
        }
    }

    public init(_ text: String) {
        var text = text
        self = text.withUTF8 { Self(UnsafeRawBufferPointer($0)) }
    }

    public init(stringLiteral text: String) { self.init(text) }

    /// Calls `body` with the text's UTF-8 bytes, in place.
    @inlinable
    public func withUTF8<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        if let spilled {
            if let result = try spilled.utf8.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
                return result
            }
            var copy = spilled
            return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
        }
        return try withUnsafeBytes(of: words) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    /// Bytes of the text.
    @inlinable
    public var utf8Count: Int { count }

    /// Whether the text is held in the value (no `String` behind it).
    public var isInline: Bool { spilled == nil }

    /// The text as a `String` (allocates beyond 15 bytes: for logs and rare paths).
    public var string: String { spilled ?? withUTF8 { String(decoding: $0, as: UTF8.self) } }

    public var description: String { string }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.count == rhs.count && lhs.withUTF8 { left in rhs.withUTF8 { right in left.elementsEqual(right) } }
    }
}
