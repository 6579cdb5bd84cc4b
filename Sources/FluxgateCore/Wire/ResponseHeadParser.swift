/// A strict parser for upstream HTTP/1.x response heads (RFC 9112 §2-§5).
///
/// Fluxgate forwards response heads as bytes with small edits instead of decoding
/// them into dictionaries and encoding them again; that is how nginx and HAProxy
/// reach their speed (see docs/ARCHITECTURE.md). Being that close to the bytes, it
/// must be at least as strict as NIOHTTP1's llhttp about what it accepts, because a
/// lenient proxy is how response splitting and desync happen. Refused:
/// - anything but `HTTP/1.0` or `HTTP/1.1`, a status outside 100...599, a status line
///   without SP after the code (reason phrases may be empty);
/// - a bare LF line ending, a NUL or CR inside a line, obs-fold continuation lines;
/// - a field name that is not a token, whitespace before the colon;
/// - `Content-Length` that is not 1*DIGIT (spaces around it allowed, tabs not),
///   is repeated (even with the same value), or overflows;
/// - `Transfer-Encoding` together with `Content-Length`;
/// - a head longer than `maxLength` bytes.
public enum ResponseHeadParser {
    public enum Outcome: Sendable, Equatable {
        /// The blank line that ends the head has not arrived yet.
        case incomplete
        case complete(ResponseHead)
        case invalid(String)
    }

    /// Offset just past `\r\n\r\n` in `bytes`, scanning from `from` (which may point
    /// anywhere: the scan backs up 3 bytes so a terminator split across reads is found).
    public static func headEnd(in bytes: UnsafeRawBufferPointer, from: Int = 0) -> Int? {
        var index = max(0, from - 3)
        let count = bytes.count
        while index + 3 < count {
            // Skip quickly to the next CR.
            if bytes[index + 3] != 0x0A { index += bytes[index + 3] == 0x0D ? 1 : 4; continue }
            if bytes[index] == 0x0D && bytes[index + 1] == 0x0A && bytes[index + 2] == 0x0D {
                return index + 4
            }
            index += 1
        }
        return nil
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, maxLength: Int = 65_536) -> Outcome {
        var storage: [ResponseHead.Field] = []
        return parse(bytes, maxLength: maxLength, fieldStorage: &storage)
    }

    /// As above, with the field list built in `fieldStorage`'s storage (moved into the
    /// result): a caller that gives the list back after use (``ResponseHead/fields``)
    /// parses its next head without allocating.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxLength: Int = 65_536, fieldStorage: inout [ResponseHead.Field]) -> Outcome {
        guard let end = headEnd(in: bytes) else {
            if bytes.count > maxLength { return .invalid("response head exceeds \(maxLength) bytes") }
            return problemSoFar(bytes).map { .invalid($0) } ?? .incomplete
        }
        if end > maxLength { return .invalid("response head exceeds \(maxLength) bytes") }
        return parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<end]), fieldStorage: &fieldStorage)
    }

    private static func parseHead(_ head: UnsafeRawBufferPointer, fieldStorage: inout [ResponseHead.Field]) -> Outcome {
        // Status line: HTTP/1.x SP 3DIGIT SP reason CRLF
        guard head.count >= 14,
            head[0] == UInt8(ascii: "H"), head[1] == UInt8(ascii: "T"), head[2] == UInt8(ascii: "T"),
            head[3] == UInt8(ascii: "P"), head[4] == UInt8(ascii: "/"), head[5] == UInt8(ascii: "1"),
            head[6] == UInt8(ascii: "."), head[7] == UInt8(ascii: "0") || head[7] == UInt8(ascii: "1"),
            head[8] == UInt8(ascii: " ")
        else { return .invalid("status line does not start with HTTP/1.0 or HTTP/1.1") }
        let minor = Int(head[7] - UInt8(ascii: "0"))
        var status = 0
        for index in 9..<12 {
            let digit = head[index]
            guard digit >= UInt8(ascii: "0") && digit <= UInt8(ascii: "9") else { return .invalid("status code is not 3 digits") }
            status = status * 10 + Int(digit - UInt8(ascii: "0"))
        }
        guard status >= 100 && status <= 599 else { return .invalid("status code \(status) out of range") }
        guard let statusLineEnd = lineEnd(head, from: 12) else { return .invalid("status line has a bare LF or a control byte") }
        if statusLineEnd > 14 && head[12] != UInt8(ascii: " ") { return .invalid("no space after the status code") }

        var result = ResponseHead(
            minorVersion: minor, status: status, length: head.count, statusLineLength: statusLineEnd, fields: [])
        swap(&result.fields, &fieldStorage)
        result.fields.removeAll(keepingCapacity: true)
        if result.fields.capacity < 12 { result.fields.reserveCapacity(12) }
        result.connectionClose = minor == 0
        var position = statusLineEnd
        var sawKeepAlive = false
        while position < head.count - 2 {
            let lineStart = position
            guard let next = lineEnd(head, from: lineStart) else { return .invalid("header line has a bare LF or a control byte") }
            let first = head[lineStart]
            if first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { return .invalid("obsolete line folding") }
            var colon = lineStart
            while colon < next - 2 && head[colon] != UInt8(ascii: ":") {
                guard HeaderName.isTokenByte(head[colon]) else { return .invalid("header name is not a token") }
                colon += 1
            }
            guard colon < next - 2 else { return .invalid("header line without a colon") }
            guard colon > lineStart else { return .invalid("empty header name") }
            var valueStart = colon + 1
            var valueEnd = next - 2
            while valueStart < valueEnd && (head[valueStart] == 0x20 || head[valueStart] == 0x09) { valueStart += 1 }
            while valueEnd > valueStart && (head[valueEnd - 1] == 0x20 || head[valueEnd - 1] == 0x09) { valueEnd -= 1 }
            let name = UnsafeRawBufferPointer(rebasing: head[lineStart..<colon])
            let kind = HeaderName.classify(name)
            let value = UnsafeRawBufferPointer(rebasing: head[valueStart..<valueEnd])
            switch kind {
            case .contentLength:
                // As llhttp: a tab around the digits is refused, not trimmed (found by
                // the differential test against NIOHTTP1's decoder).
                let raw = UnsafeRawBufferPointer(rebasing: head[(colon + 1)..<(next - 2)])
                guard !raw.contains(0x09), let length = parseContentLength(value) else {
                    return .invalid("invalid Content-Length")
                }
                // Even an identical repeat is refused, as llhttp does (RFC 9110 §8.6 would
                // allow it; found by the fuzzer, Fuzz/run.sh).
                if result.contentLength != nil { return .invalid("repeated Content-Length") }
                result.contentLength = length
            case .transferEncoding:
                result.hasTransferEncoding = true
                result.chunkedLast = lastTokenIsChunked(value)
            case .connection:
                // The closure captures these locals, not `result`: a `result` captured by a
                // closure is not moved into the outcome but copied (a retain and release
                // of its field list per response).
                var close = false
                var tokens: [String] = []
                forEachToken(value) { token in
                    if HeaderName.equalsLowercase(token, "close") {
                        close = true
                    } else if HeaderName.equalsLowercase(token, "keep-alive") {
                        sawKeepAlive = true
                    } else {
                        tokens.append(String(decoding: token, as: UTF8.self).lowercased())
                    }
                }
                if close { result.connectionClose = true }
                if !tokens.isEmpty { result.connectionTokens += tokens }
            case .date:
                result.hasDate = true
            default:
                break
            }
            result.fields.append(.init(kind: kind, line: lineStart..<next, name: lineStart..<colon, value: valueStart..<valueEnd))
            position = next
        }
        if result.hasTransferEncoding && result.contentLength != nil {
            // RFC 9112 §6.3 ¶3: a smuggling / splitting signature "ought to be handled as
            // an error"; llhttp refuses it too (found by the fuzzer).
            return .invalid("both Transfer-Encoding and Content-Length")
        }
        if minor == 0 && sawKeepAlive && !result.connectionTokens.contains("close") { result.connectionClose = false }
        return .complete(consume result)
    }

    /// What the head's first bytes already show to be wrong, before its end arrives:
    /// an upstream that is not speaking HTTP/1.x, or ends its lines with a bare LF
    /// (lenient servers do), would otherwise never complete a head and the client would
    /// wait for `upstream_header` to get a 504 instead of a 502 at once. Refuses only
    /// what ``parseHead`` refuses once the head is whole.
    private static let httpPrefix: [UInt8] = Array("HTTP/1.".utf8)

    private static func problemSoFar(_ bytes: UnsafeRawBufferPointer) -> String? {
        for index in 0..<min(bytes.count, httpPrefix.count) where bytes[index] != httpPrefix[index] {
            return "status line does not start with HTTP/1.0 or HTTP/1.1"
        }
        if bytes.count > 7 && bytes[7] != UInt8(ascii: "0") && bytes[7] != UInt8(ascii: "1") {
            return "status line does not start with HTTP/1.0 or HTTP/1.1"
        }
        var index = 0
        while true {
            index = ByteScan.firstControlExceptTab(in: bytes, from: index)
            guard index < bytes.count else { return nil }
            guard bytes[index] == 0x0D else { return "a bare LF or a control byte in the head" }
            guard index + 1 < bytes.count else { return nil }  // the LF may be in the next read
            guard bytes[index + 1] == 0x0A else { return "a bare LF or a control byte in the head" }
            index += 2
        }
    }

    /// Offset after the CRLF ending the line that starts at `from`; nil for a bare LF,
    /// a CR not followed by LF, or a NUL.
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        // Every byte up to the CR is HTAB or not a control byte (DEL is one).
        let index = ByteScan.firstControlExceptTab(in: bytes, from: from)
        guard index < bytes.count, bytes[index] == 0x0D else { return nil }
        return index + 1 < bytes.count && bytes[index + 1] == 0x0A ? index + 2 : nil
    }

    /// 1*DIGIT without sign, spaces or commas; nil on overflow.
    static func parseContentLength(_ value: UnsafeRawBufferPointer) -> Int? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var result = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            result = result * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return result
    }

    static func lastTokenIsChunked(_ value: UnsafeRawBufferPointer) -> Bool {
        var last: UnsafeRawBufferPointer? = nil
        forEachToken(value) { last = $0 }
        guard let last else { return false }
        return HeaderName.equalsLowercase(last, "chunked")
    }

    /// Calls `body` with each comma-separated, whitespace-trimmed, non-empty token.
    static func forEachToken(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var start = 0
        while start <= value.count {
            var end = start
            while end < value.count && value[end] != UInt8(ascii: ",") { end += 1 }
            var tokenStart = start
            var tokenEnd = end
            while tokenStart < tokenEnd && (value[tokenStart] == 0x20 || value[tokenStart] == 0x09) { tokenStart += 1 }
            while tokenEnd > tokenStart && (value[tokenEnd - 1] == 0x20 || value[tokenEnd - 1] == 0x09) { tokenEnd -= 1 }
            if tokenEnd > tokenStart { body(UnsafeRawBufferPointer(rebasing: value[tokenStart..<tokenEnd])) }
            start = end + 1
        }
    }
}
