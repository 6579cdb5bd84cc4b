/// Finds where a response body ends in a stream of bytes, without copying them.
///
/// Fed each buffer as it arrives; answers how many of its bytes belong to the current
/// message and whether the message ended. For chunked bodies it validates the chunk
/// syntax strictly (RFC 9112 §7.1: hex sizes without sign or spaces, CRLF after each
/// chunk, bounded extensions and trailers) and reports the payload ranges, so the
/// I/O layer can either pass the chunked bytes through untouched (HTTP/1.1 clients)
/// or send only the payload (HTTP/1.0 clients, whose responses end at close).
public struct BodyFramer: Sendable, Equatable {
    public enum Failure: Error, Sendable, Equatable {
        case invalidChunkSize
        case chunkSizeTooLarge
        case missingCRLF
        case extensionTooLong
        case trailerTooLong
    }

    enum ChunkState: Sendable, Equatable {
        case size(value: Int, digits: Int)
        case extensionBytes(value: Int, length: Int)
        case sizeLF(value: Int)
        case data(remaining: Int)
        case dataCR
        case dataLF
        /// At the start of a trailer line (or the final empty line).
        case trailerLineStart
        case trailerLine
        case trailerLF(emptyLine: Bool)
    }

    enum Mode: Sendable, Equatable {
        case none
        case length(remaining: Int)
        case chunked(ChunkState)
        case untilClose
        case done
    }

    private var mode: Mode
    private var trailerBytes = 0
    static let maxExtensionBytes = 4_096
    static let maxTrailerBytes = 65_536

    public init(_ framing: BodyFraming) {
        switch framing {
        case .none: mode = .done
        case .contentLength(let length): mode = length == 0 ? .done : .length(remaining: length)
        case .chunked: mode = .chunked(.size(value: 0, digits: 0))
        case .untilClose: mode = .untilClose
        }
    }

    public var isComplete: Bool { mode == .done }

    /// Consumes a prefix of `bytes`. Returns how many bytes belong to this message and
    /// calls `payload` with the ranges (within `bytes`) that carry body data.
    public mutating func consume(
        _ bytes: UnsafeRawBufferPointer, payload: (Range<Int>) -> Void
    ) throws(Failure) -> Int {
        switch mode {
        case .none, .done:
            return 0
        case .untilClose:
            if !bytes.isEmpty { payload(0..<bytes.count) }
            return bytes.count
        case .length(let remaining):
            let taken = min(remaining, bytes.count)
            if taken > 0 { payload(0..<taken) }
            mode = remaining == taken ? .done : .length(remaining: remaining - taken)
            return taken
        case .chunked(let state):
            return try consumeChunked(bytes, state: state, payload: payload)
        }
    }

    private mutating func consumeChunked(
        _ bytes: UnsafeRawBufferPointer, state initial: ChunkState, payload: (Range<Int>) -> Void
    ) throws(Failure) -> Int {
        var state = initial
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch state {
            case .size(let value, let digits):
                if let digit = Self.hexValue(byte) {
                    guard digits < 15 else { throw .chunkSizeTooLarge }
                    state = .size(value: value << 4 | digit, digits: digits + 1)
                } else if digits == 0 {
                    throw .invalidChunkSize
                } else if byte == 0x0D {
                    state = .sizeLF(value: value)
                } else if byte == UInt8(ascii: ";") || byte == 0x20 || byte == 0x09 {
                    state = .extensionBytes(value: value, length: 1)
                } else {
                    throw .invalidChunkSize
                }
                index += 1
            case .extensionBytes(let value, let length):
                if byte == 0x0D {
                    state = .sizeLF(value: value)
                } else if byte == 0x0A || byte == 0x00 {
                    throw .missingCRLF
                } else {
                    guard length < Self.maxExtensionBytes else { throw .extensionTooLong }
                    state = .extensionBytes(value: value, length: length + 1)
                }
                index += 1
            case .sizeLF(let value):
                guard byte == 0x0A else { throw .missingCRLF }
                index += 1
                state = value == 0 ? .trailerLineStart : .data(remaining: value)
            case .data(let remaining):
                let taken = min(remaining, bytes.count - index)
                payload(index..<(index + taken))
                index += taken
                state = taken == remaining ? .dataCR : .data(remaining: remaining - taken)
            case .dataCR:
                guard byte == 0x0D else { throw .missingCRLF }
                index += 1
                state = .dataLF
            case .dataLF:
                guard byte == 0x0A else { throw .missingCRLF }
                index += 1
                state = .size(value: 0, digits: 0)
            case .trailerLineStart:
                if byte == 0x0D {
                    state = .trailerLF(emptyLine: true)
                } else if byte == 0x0A || byte == 0x00 || byte == 0x20 || byte == 0x09 {
                    throw .missingCRLF
                } else {
                    state = .trailerLine
                }
                try countTrailerByte()
                index += 1
            case .trailerLine:
                if byte == 0x0D {
                    state = .trailerLF(emptyLine: false)
                } else if byte == 0x0A || byte == 0x00 {
                    throw .missingCRLF
                }
                try countTrailerByte()
                index += 1
            case .trailerLF(let emptyLine):
                guard byte == 0x0A else { throw .missingCRLF }
                index += 1
                if emptyLine {
                    mode = .done
                    return index
                }
                state = .trailerLineStart
            }
        }
        mode = .chunked(state)
        return index
    }

    private mutating func countTrailerByte() throws(Failure) {
        trailerBytes += 1
        if trailerBytes > Self.maxTrailerBytes { throw .trailerTooLong }
    }

    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
