import FluxgateCore
import NIOHTTP1

/// The gateway's request-head parser against llhttp on one input, for the seeded
/// differential test and the libFuzzer target alike: whatever ``RequestHeadParser``
/// accepts, llhttp must accept too and read the same way (method, target, version,
/// every field's name and value); parsing in pieces must give what parsing whole
/// gives; no range may point outside the head. Returns the broken property, or nil.
public enum RequestDifferential {
    public enum Verdict: Equatable {
        case bothAccept, onlyLlhttpAccepts, bothRefuse, incomplete
    }

    public static func check(_ bytes: [UInt8], split: Int = 0) -> (Verdict, problem: String?) {
        var whole = RequestHead()
        let outcome = bytes.withUnsafeBytes { RequestHeadParser.parse($0, maxLength: 8192, into: &whole) }
        // Resumed in two pieces: the same answer.
        if bytes.count > 1 {
            let cut = 1 + split % (bytes.count - 1)
            var pieces = RequestHead()
            var resumed = bytes[0..<cut].withUnsafeBytes { RequestHeadParser.parse($0, maxLength: 8192, into: &pieces) }
            if resumed == .incomplete { resumed = bytes.withUnsafeBytes { RequestHeadParser.parse($0, maxLength: 8192, into: &pieces) } }
            if case .invalid = outcome, case .invalid = resumed {
            } else if resumed != outcome {
                return (.bothRefuse, "parsing in two pieces at \(cut) gave \(resumed), whole \(outcome)")
            } else if outcome == .complete {
                if pieces != whole { return (.bothRefuse, "parsing in two pieces at \(cut) read another head") }
            }
        }
        switch outcome {
        case .incomplete:
            return (.incomplete, nil)
        case .invalid(let refusal):
            // What the access log would name of it: a token and a target free of spaces
            // and control bytes, never read past the input.
            if let line = bytes.withUnsafeBytes({ whole.refusedLine(in: $0, for: refusal) }) {
                let clean = { (text: String) in !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F } }
                guard clean(line.method), line.method.utf8.count <= 32, clean(line.target) else {
                    return (.bothRefuse, "refused line \(line) is not a token and a target")
                }
            }
            return (llhttpAccepts(bytes) ? .onlyLlhttpAccepts : .bothRefuse, nil)
        case .complete:
            break
        }
        let head = whole
        guard head.length <= bytes.count, head.target.upperBound <= head.length,
            head.fields.allSatisfy({ $0.line.upperBound <= head.length && $0.value.upperBound <= $0.line.upperBound && $0.name.upperBound < $0.line.upperBound })
        else { return (.bothAccept, "a range points outside the head") }
        let prefix = Array(bytes[0..<head.length])
        guard let theirs = LlhttpOracle.requestHead(prefix) else {
            return (.bothAccept, "accepted a head llhttp refuses: \(String(decoding: prefix, as: UTF8.self).debugDescription)")
        }
        func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
        if theirs.method.rawValue != head.method.name { return (.bothAccept, "method \(head.method.name) vs llhttp \(theirs.method.rawValue)") }
        if theirs.uri != text(head.target) { return (.bothAccept, "target \(text(head.target)) vs llhttp \(theirs.uri)") }
        if Int(theirs.version.minor) != head.minorVersion || theirs.version.major != 1 { return (.bothAccept, "version differs") }
        let ours = head.fields.map { (text($0.name), text($0.value)) }
        let llhttp = theirs.headers.map { ($0.name, trimmed($0.value)) }
        if ours.count != llhttp.count || zip(ours, llhttp).contains(where: { $0.0 != $1.0 || $0.1 != $1.1 }) {
            return (.bothAccept, "fields \(ours) vs llhttp \(llhttp)")
        }
        return (.bothAccept, nil)
    }

    static func llhttpAccepts(_ bytes: [UInt8]) -> Bool {
        LlhttpOracle.requestParts(bytes) != nil
    }

    static func trimmed(_ value: String) -> String {
        var utf8 = Substring(value).utf8
        while let first = utf8.first, first == 0x20 || first == 0x09 { utf8 = utf8.dropFirst() }
        while let last = utf8.last, last == 0x20 || last == 0x09 { utf8 = utf8.dropLast() }
        return String(Substring(utf8))
    }
}
