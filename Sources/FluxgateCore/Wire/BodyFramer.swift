/// Finds where a response body ends in a stream of bytes, without copying them.
///
/// Fed each buffer as it arrives; answers how many of its bytes belong to the current
/// message and whether the message ended. For chunked bodies it validates the chunk
/// syntax strictly (RFC 9112 §7.1: hex sizes without sign or spaces, CRLF after each
/// chunk, bounded extensions, trailers that are `token ":" value` field lines and
/// not framing fields) and reports the payload ranges, so the
/// I/O layer can either pass the chunked bytes through untouched (HTTP/1.1 clients)
/// or send only the payload (HTTP/1.0 clients, whose responses end at close).
public struct BodyFramer: Sendable, Equatable {
    public enum Failure: Error, Sendable, Equatable {
        case invalidChunkSize
        case chunkSizeTooLarge
        case missingCRLF
        /// Chunk extensions that are not `;name[=token|"quoted"]` (RFC 9112 §7.1.1).
        case invalidChunkExtension
        /// A trailer line that is not `token ":" value` (RFC 9112 §7.1.2, §5).
        case invalidTrailer
        /// Content-Length or Transfer-Encoding as a trailer field: framing has no place
        /// in trailers (RFC 9110 §6.5.1), and llhttp refuses them too.
        case framingFieldInTrailer
        case extensionTooLong
        case trailerTooLong
    }

    enum ChunkState: Sendable, Equatable {
        case size(value: Int, digits: Int)
        /// Inside the chunk extensions after the size: where in the grammar, and how
        /// many extension bytes so far.
        case chunkExtension(value: Int, part: ExtensionPart, length: Int)
        case sizeLF(value: Int)
        case data(remaining: Int)
        case dataCR
        case dataLF
        /// At the start of a trailer line (or the final empty line).
        case trailerLineStart
        /// Inside a trailer field name (a token, up to the colon); `framing` tracks whether
        /// the name so far still spells Content-Length (bit 0) or Transfer-Encoding (bit 1).
        case trailerName(length: Int, framing: UInt8)
        /// After the colon: the value, up to CR.
        case trailerValue
        case trailerLF(emptyLine: Bool)

        /// In the trailer section (after the last chunk).
        var inTrailers: Bool {
            switch self {
            case .trailerLineStart, .trailerName, .trailerValue, .trailerLF: true
            default: false
            }
        }
    }

    /// RFC 9112 §7.1.1 `chunk-ext = *( ";" chunk-ext-name [ "=" chunk-ext-val ] )`, with
    /// `chunk-ext-val = token / quoted-string`. The optional whitespace (BWS) the RFC
    /// tolerates around `;` and `=` is refused: being stricter than llhttp is safe,
    /// being looser is not.
    enum ExtensionPart: Sendable, Equatable {
        /// Just after `;`: a name must follow.
        case nameStart
        case name
        /// Just after `=`: a token or a quoted string must follow.
        case valueStart
        case token
        case quoted
        /// After a backslash inside a quoted string.
        case quotedEscape
        /// After the closing quote: `;` or the end of the line.
        case quotedEnd
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

    /// The body ends when the connection closes (no length, not chunked).
    public var endsAtClose: Bool { mode == .untilClose }

    /// Consumes a prefix of `bytes`. Returns how many bytes belong to this message and
    /// calls `payload` with the ranges (within `bytes`) that carry body data.
    public mutating func consume(
        _ bytes: UnsafeRawBufferPointer, payload: (Range<Int>) -> Void
    ) throws(Failure) -> Int {
        try consume(bytes, payload: payload, trailer: { _ in })
    }

    /// As above; `trailer` gets the ranges holding trailer-section bytes (field lines
    /// and the final CRLF), already checked, for a caller that forwards trailers.
    public mutating func consume(
        _ bytes: UnsafeRawBufferPointer, payload: (Range<Int>) -> Void, trailer: (Range<Int>) -> Void
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
            return try consumeChunked(bytes, state: state, payload: payload, trailer: trailer)
        }
    }

    private mutating func consumeChunked(
        _ bytes: UnsafeRawBufferPointer, state initial: ChunkState, payload: (Range<Int>) -> Void,
        trailer: (Range<Int>) -> Void
    ) throws(Failure) -> Int {
        var state = initial
        var index = 0
        var trailerStart: Int? = nil
        while index < bytes.count {
            let byte = bytes[index]
            if trailerStart == nil, state.inTrailers { trailerStart = index }
            switch state {
            case .size(let value, let digits):
                if let digit = Self.hexValue(byte) {
                    guard digits < 15 else { throw .chunkSizeTooLarge }
                    state = .size(value: value << 4 | digit, digits: digits + 1)
                } else if digits == 0 {
                    throw .invalidChunkSize
                } else if byte == 0x0D {
                    state = .sizeLF(value: value)
                } else if byte == UInt8(ascii: ";") {
                    state = .chunkExtension(value: value, part: .nameStart, length: 1)
                } else {
                    throw .invalidChunkSize
                }
                index += 1
            case .chunkExtension(let value, let part, let length):
                if byte == 0x0D && part != .quoted && part != .quotedEscape {
                    guard part == .name || part == .token || part == .quotedEnd else { throw .invalidChunkExtension }
                    state = .sizeLF(value: value)
                } else {
                    guard length < Self.maxExtensionBytes else { throw .extensionTooLong }
                    state = .chunkExtension(value: value, part: try Self.next(part, byte), length: length + 1)
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
                } else if byte == 0x0A || byte == 0x00 {
                    throw .missingCRLF
                } else if HeaderName.isTokenByte(byte) {
                    // A field line as in a head: no folding, no empty name.
                    state = .trailerName(length: 1, framing: Self.framingMatch(0b11, byte, at: 0))
                } else {
                    throw .invalidTrailer
                }
                try countTrailerByte()
                index += 1
            case .trailerName(let length, let framing):
                if byte == UInt8(ascii: ":") {
                    // Framing fields have no place in trailers (RFC 9110 §6.5.1); llhttp
                    // refuses them too (found by the fuzzer).
                    if (framing & 1 != 0 && length == Self.contentLength.count)
                        || (framing & 2 != 0 && length == Self.transferEncoding.count)
                    {
                        throw .framingFieldInTrailer
                    }
                    state = .trailerValue
                } else if HeaderName.isTokenByte(byte) {
                    state = .trailerName(length: length + 1, framing: Self.framingMatch(framing, byte, at: length))
                } else {
                    throw .invalidTrailer
                }
                try countTrailerByte()
                index += 1
            case .trailerValue:
                if byte == 0x0D {
                    state = .trailerLF(emptyLine: false)
                } else if byte == 0x0A || byte == 0x00 {
                    throw .missingCRLF
                } else if (byte < 0x20 && byte != 0x09) || byte == 0x7F {
                    // The same bytes a head's field value may not hold.
                    throw .invalidTrailer
                }
                try countTrailerByte()
                index += 1
            case .trailerLF(let emptyLine):
                guard byte == 0x0A else { throw .missingCRLF }
                index += 1
                if emptyLine {
                    mode = .done
                    if let trailerStart { trailer(trailerStart..<index) }
                    return index
                }
                state = .trailerLineStart
            }
        }
        mode = .chunked(state)
        if let trailerStart, index > trailerStart { trailer(trailerStart..<index) }
        return index
    }

    private mutating func countTrailerByte() throws(Failure) {
        trailerBytes += 1
        if trailerBytes > Self.maxTrailerBytes { throw .trailerTooLong }
    }

    static let contentLength = Array("content-length".utf8)
    static let transferEncoding = Array("transfer-encoding".utf8)

    /// Narrows which framing field names a trailer name can still be, given its byte at `index`.
    /// (Not ``HeaderName/classify(_:)``: a trailer name may arrive split across reads,
    /// and the framer keeps no bytes, so it matches as the bytes pass.)
    private static func framingMatch(_ candidates: UInt8, _ byte: UInt8, at index: Int) -> UInt8 {
        let lower = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
        var result: UInt8 = 0
        if candidates & 1 != 0 && index < contentLength.count && contentLength[index] == lower { result |= 1 }
        if candidates & 2 != 0 && index < transferEncoding.count && transferEncoding[index] == lower { result |= 2 }
        return result
    }

    /// One step of the chunk-extension grammar (CR, which ends it, is handled by the caller).
    private static func next(_ part: ExtensionPart, _ byte: UInt8) throws(Failure) -> ExtensionPart {
        let semicolon = UInt8(ascii: ";"), equals = UInt8(ascii: "="), quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        switch part {
        case .nameStart:
            if HeaderName.isTokenByte(byte) { return .name }
        case .name:
            if HeaderName.isTokenByte(byte) { return .name }
            if byte == equals { return .valueStart }
            if byte == semicolon { return .nameStart }
        case .valueStart:
            if HeaderName.isTokenByte(byte) { return .token }
            if byte == quote { return .quoted }
        case .token:
            if HeaderName.isTokenByte(byte) { return .token }
            if byte == semicolon { return .nameStart }
        case .quoted:
            // qdtext: HTAB, SP, visible ASCII but `"` and `\`, obs-text.
            if byte == quote { return .quotedEnd }
            if byte == backslash { return .quotedEscape }
            if byte == 0x09 || (byte >= 0x20 && byte != 0x7F) { return .quoted }
        case .quotedEscape:
            if byte == 0x09 || (byte >= 0x20 && byte != 0x7F) { return .quoted }
        case .quotedEnd:
            if byte == semicolon { return .nameStart }
        }
        if byte == 0x0A || byte == 0x00 { throw .missingCRLF }
        throw .invalidChunkExtension
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

extension BodyFramer.Failure: CustomStringConvertible {
    /// What was wrong, for a refusal's detail and the logs.
    public var description: String {
        switch self {
        case .invalidChunkSize: "chunk size is not hexadecimal digits followed by CRLF"
        case .chunkSizeTooLarge: "chunk size has more than 15 hexadecimal digits"
        case .missingCRLF: "chunk data is not followed by CRLF"
        case .invalidChunkExtension: "invalid chunk extension"
        case .invalidTrailer: "invalid trailer field line"
        case .framingFieldInTrailer: "Content-Length or Transfer-Encoding in the trailer section"
        case .extensionTooLong: "chunk extensions longer than \(BodyFramer.maxExtensionBytes) bytes"
        case .trailerTooLong: "trailer section longer than \(BodyFramer.maxTrailerBytes) bytes"
        }
    }
}
