import FluxgateCore
import FluxgateTestSupport
import NIOCore
import NIOHTTP1

#if !FUZZING
import Foundation
#endif

/// Checks for the parsers Fluxgate wrote itself, with llhttp (NIOHTTP1's parser) as
/// the oracle. The first input byte picks the check, the rest is the data:
/// - even: an upstream response head for ``ResponseHeadParser``;
/// - 0xA5: the request-target and client-key rules; 0xA7: a request head for
///   ``RequestHeadParser`` (``RequestDifferential``: never accepts what llhttp refuses,
///   reads what llhttp reads, resumes to the same head);
/// - odd: a chunked body for ``BodyFramer``, with the first data byte choosing how
///   the bytes are split across reads.
/// A broken property stops the process (libFuzzer keeps the input as a crash).
///
/// Built with `-sanitize=fuzzer` by `Fuzz/run.sh`; built normally, the executable
/// replays files or folders of inputs (the committed corpus) through the same checks.
enum WireChecks {
    static let chunkedHead = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let selector = input.first else { return }
        let data = Array(input.dropFirst())
        if selector == 0xA5 {
            checkRequestRules(data)
        } else if selector == 0xA7 {
            checkRequestHead(data)
        } else if selector & 1 == 0 {
            checkHead(data)
        } else {
            checkChunked(data)
        }
    }

    // MARK: Request-side rules (edge hardening)

    /// The request target and client-key rules on any bytes: no trap, and their
    /// invariants. A normalised path starts with `/`, has no empty, `.` or `..`
    /// segment and no escaped unreserved character left, and normalising it again
    /// changes nothing (so a route sees one form whatever the client spelt); a
    /// rate-limit key from a header is always 36 bytes; an address range contains the
    /// address it was written with; an absolute-form target's origin-form starts at its
    /// path or query, and its authority agrees with itself as a `Host`.
    static func checkRequestRules(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let target = text.utf8.first == UInt8(ascii: "/") ? text : "/" + text
        if let path = RequestTarget.normalizedPath(target) {
            // Bytes, not Characters: a combining mark after `/` must not hide the separator.
            let utf8 = Array(path.utf8)
            require(utf8.first == UInt8(ascii: "/"), "normalised path without a leading slash: \(path)", bytes)
            let segments = utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
            for (index, segment) in segments.enumerated() {
                require(!segment.elementsEqual(Array(".".utf8)) && !segment.elementsEqual(Array("..".utf8)), "dot segment left in \(path)", bytes)
                require(!segment.isEmpty || index == segments.count - 1, "empty segment left in \(path)", bytes)
            }
            require(RequestTarget.normalizedPath(path) == path, "normalising twice changed \(path)", bytes)
        }
        // The upstream's origin-form of an absolute-form target starts inside it, at
        // its path or query, and never for an origin-form one; the Host comparison
        // agrees with itself.
        if let start = bytes.withUnsafeBytes({ RequestTarget.originFormStart($0) }) {
            require(start <= bytes.count && bytes.first != UInt8(ascii: "/"), "origin-form start \(start) outside the target", bytes)
            require(start == bytes.count || bytes[start] == UInt8(ascii: "/") || bytes[start] == UInt8(ascii: "?"), "origin-form start not at a path or query", bytes)
        }
        // (Visible ASCII only: the parser refuses any other byte in an authority, and
        // a Host is compared without the spaces around it.)
        if let authority = RequestTarget.absoluteAuthority(text), authority.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            require(!RequestTarget.hostDisagrees(target: text, host: String(authority)), "an authority disagrees with itself", bytes)
        }
        require(RateLimitKey.header(text) == Array(text.utf8).withUnsafeBytes { RateLimitKey.header($0) }, "rate-limit key of the text and of its bytes", bytes)
        require(RateLimitKey.header(text) != RateLimitKey.address(text), "a header value names an address bucket", bytes)
        if let range = AddressRange.parse(text) {
            let address = String(text.split(separator: "/", omittingEmptySubsequences: false)[0])
            require(range.contains(address), "range \(text) does not contain its own address", bytes)
        }
    }

    static func require(_ condition: Bool, _ message: @autoclosure () -> String, _ data: [UInt8]) {
        if !condition {
            fatalError("\(message()) — input \(String(decoding: data, as: UTF8.self).debugDescription)")
        }
    }

    // MARK: Request heads

    static func checkRequestHead(_ bytes: [UInt8]) {
        let split = bytes.count > 2 ? Int(bytes[bytes.count / 2]) : 0
        let (_, problem) = RequestDifferential.check(bytes, split: split)
        if let problem { require(false, problem, bytes) }
    }

    // MARK: Response heads

    static func checkHead(_ bytes: [UInt8]) {
        let naive = naiveHeadEnd(bytes)
        let fast = bytes.withUnsafeBytes { ResponseHeadParser.headEnd(in: $0) }
        require(fast == naive, "headEnd \(String(describing: fast)) != \(String(describing: naive))", bytes)
        if let naive, naive > 4 {
            // A terminator split across reads is still found when the scan resumes late.
            let resumed = bytes.withUnsafeBytes { ResponseHeadParser.headEnd(in: $0, from: naive - 1) }
            require(resumed == naive, "resumed headEnd \(String(describing: resumed)) != \(naive)", bytes)
        }
        let outcome = bytes.withUnsafeBytes { ResponseHeadParser.parse($0, maxLength: 8192) }
        guard case .complete(let head) = outcome else {
            if case .incomplete = outcome { require(naive == nil || naive! > 8192, "incomplete although the head ends", bytes) }
            return
        }
        require(head.length == naive, "head length \(head.length) != end \(String(describing: naive))", bytes)
        require((100...599).contains(head.status), "status \(head.status)", bytes)
        require(head.statusLineLength <= head.length, "status line beyond the head", bytes)
        for field in head.fields {
            require(field.line.lowerBound >= head.statusLineLength && field.line.upperBound <= head.length, "field line out of bounds", bytes)
            require(field.name.lowerBound == field.line.lowerBound && field.name.upperBound <= field.value.lowerBound, "field name range", bytes)
            require(field.value.upperBound <= field.line.upperBound - 2, "field value range", bytes)
        }
        let prefix = Array(bytes[..<(head.length - 1)])
        if case .complete = prefix.withUnsafeBytes({ ResponseHeadParser.parse($0, maxLength: 8192) }) {
            require(false, "a head minus its last byte parsed complete", bytes)
        }
        // What a head's first bytes are refused for (before its end arrives) must be
        // what the whole head is refused for: no prefix of a good head is invalid.
        for cut in Set([1, head.length / 3, head.length / 2, head.length - 2, head.length - 1]) where cut > 0 && cut < head.length {
            if case .invalid(let reason) = bytes.withUnsafeBytes({ ResponseHeadParser.parse(UnsafeRawBufferPointer(rebasing: $0[..<cut]), maxLength: 8192) }) {
                require(false, "the first \(cut) bytes of a good head refused: \(reason)", bytes)
            }
        }
        guard let theirs = LlhttpOracle.head(Array(bytes[..<head.length])) else {
            require(false, "accepted a head llhttp refuses", bytes)
            return
        }
        require(theirs.status.code == head.status, "status \(head.status) vs llhttp \(theirs.status.code)", bytes)
        require(theirs.version.minor == head.minorVersion, "version differs from llhttp", bytes)
        require(theirs.headers.count == head.fields.count, "\(head.fields.count) fields vs llhttp \(theirs.headers.count)", bytes)
        for (field, (name, value)) in zip(head.fields, theirs.headers) {
            require(String(decoding: bytes[field.name], as: UTF8.self) == name, "field name differs from llhttp's \(name)", bytes)
            // llhttp keeps trailing whitespace in values; RFC 9110 §5.5 says it is not part of them.
            // NIO hands values over as Strings: compare after the same UTF-8 repair.
            require(String(decoding: bytes[field.value], as: UTF8.self) == trimmed(value), "field value differs from llhttp's \(value.debugDescription)", bytes)
        }
        if let length = head.contentLength {
            let declared = theirs.headers["content-length"].compactMap { Int(trimmed($0)) }
            require(!declared.isEmpty && declared.allSatisfy { $0 == length }, "Content-Length \(length) vs llhttp \(declared)", bytes)
        }
    }

    static func trimmed(_ text: String) -> Substring {
        var slice = Substring(text)
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return slice
    }

    /// The reference answer for where a head ends: the first CRLF CRLF, found the slow way.
    static func naiveHeadEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index + 4
        }
        return nil
    }

    // MARK: Chunked bodies

    struct Framed: Equatable {
        var payload: [UInt8] = []
        var consumed = 0
        var complete = false
        var failure: BodyFramer.Failure?
    }

    /// Frames `bytes` delivered in pieces of the given sizes (cycled).
    static func frame(_ bytes: [UInt8], pieces: [Int]) -> Framed {
        var framer = BodyFramer(.chunked)
        var result = Framed()
        var offset = 0
        var step = 0
        while offset < bytes.count && !framer.isComplete {
            let end = min(bytes.count, offset + max(1, pieces[step % pieces.count]))
            step += 1
            let base = offset
            do {
                let consumed = try bytes[offset..<end].withUnsafeBytes { piece in
                    try framer.consume(piece) { range in
                        precondition(range.lowerBound >= 0 && base + range.upperBound <= end, "payload range outside the piece")
                        result.payload += bytes[(base + range.lowerBound)..<(base + range.upperBound)]
                    }
                }
                precondition(consumed <= end - base, "consumed more than it was given")
                offset += consumed
                if consumed < end - base && !framer.isComplete {
                    preconditionFailure("stopped early without completing")
                }
            } catch {
                result.failure = error as? BodyFramer.Failure
                break
            }
        }
        // After a failure the count depends on where the reads split: not compared.
        result.consumed = result.failure == nil ? offset : -1
        result.complete = framer.isComplete
        return result
    }

    static func checkChunked(_ data: [UInt8]) {
        guard let pattern = data.first else { return }
        let bytes = Array(data.dropFirst())
        let whole = frame(bytes, pieces: [bytes.count])
        let byByte = frame(bytes, pieces: [1])
        let mixed = frame(bytes, pieces: [1 + Int(pattern & 7), 1 + Int(pattern >> 3)])
        // Where the reads split the bytes must not change the outcome.
        require(byByte == whole, "byte-at-a-time framing differs: \(byByte) vs \(whole)", bytes)
        require(mixed == whole, "split framing differs: \(mixed) vs \(whole)", bytes)
        guard whole.complete else { return }
        guard let (payload, ended) = llhttpChunkedBody(Array(bytes[..<whole.consumed])) else {
            require(false, "completed a chunked body llhttp refuses", bytes)
            return
        }
        require(ended, "completed a chunked body llhttp does not see end", bytes)
        require(payload == whole.payload, "payload differs from llhttp's", bytes)
    }

    static func llhttpChunkedBody(_ body: [UInt8]) -> ([UInt8], Bool)? {
        guard let parts = LlhttpOracle.responseParts(chunkedHead + body) else { return nil }
        var payload: [UInt8] = []
        var ended = false
        for part in parts {
            switch part {
            case .head: break
            case .body(let buffer): payload += buffer.readableBytesView
            case .end: ended = true
            }
        }
        return (payload, ended)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    WireChecks.run(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}

#if FUZZING
// SwiftPM links an executable's entry point as `<module>_main`; in the fuzzing build
// that entry point hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafeRawPointer?, Int) -> CInt
) -> CInt

@_cdecl("fluxgate_fuzz_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv) { start, count in
        WireChecks.run(UnsafeRawBufferPointer(start: start, count: count))
        return 0
    }
}
#else
/// Replays inputs: `fluxgate-fuzz FILE|DIR ...` runs every file through the checks.
@main
enum Replay {
    static func main() throws {
        var files: [String] = []
        for path in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                print("no such file: \(path)")
                exit(2)
            }
            if isDirectory.boolValue {
                files += try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
            } else {
                files.append(path)
            }
        }
        for file in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            data.withUnsafeBytes { WireChecks.run($0) }
        }
        print("replayed \(files.count) inputs, all checks held")
    }
}
#endif
