import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import FluxgateCore

/// The access log's line, written as bytes: field order, both formats, quoting, numbers
/// and the calendar arithmetic of its timestamp.
struct AccessRecordTests {
    func record(path: String = "/first?q=1", status: AccessRecord.Status = .code(200), shed: String? = nil, retries: Int = 0)
        -> AccessRecord
    {
        AccessRecord(
            unixMillis: 1_764_510_690_123, client: "127.0.0.1", method: "GET", path: path, status: status, upstream: "a",
            bytes: 1234, durationMicros: 1_234_567, queueWaitMicros: 5, shedReason: shed, retries: retries,
            outcome: "proxied", requestID: .generated(0x0123_4567_89ab_cdef))
    }

    func line(_ record: AccessRecord, json: Bool) -> String {
        var bytes: [UInt8] = []
        record.write(json: json, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func logfmtLineHasTheFieldsInOrder() {
        #expect(
            line(record(), json: false)
                == "time=2025-11-30T13:51:30.123Z client=127.0.0.1 method=GET path=\"/first?q=1\" status=200 upstream=a bytes=1234 duration_ms=1234.567 queue_wait_ms=0.005 outcome=proxied request_id=0123456789abcdef\n"
        )
        #expect(record().description == line(record(), json: false))
        let shed = line(record(path: "/plain", status: .code(503), shed: "overloaded", retries: 2), json: false)
        #expect(shed.contains(" path=/plain status=503 "))
        #expect(shed.contains(" shed_reason=overloaded retries=2 outcome=proxied "))
        #expect(line(record(status: .none), json: false).contains(" status=- "))
    }

    /// A verified client certificate's subject follows the client's address (nginx's
    /// `$ssl_client_s_dn`), quoted as any value with `=` or a space — and a control byte
    /// in it (a certificate's names are the client's words) cannot split the line.
    @Test func aClientCertificatesSubjectFollowsTheClient() throws {
        var named = record()
        named.clientCertificate = "CN=client-a,O=Example Org"
        #expect(line(named, json: false).contains(#" client=127.0.0.1 client_cert="CN=client-a,O=Example Org" method=GET "#))
        named.clientCertificate = "CN=a\nx=1"
        #expect(line(named, json: false).split(separator: "\n").count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line(named, json: true).utf8)) as? [String: String])
        #expect(object["client_cert"] == "CN=a\nx=1")
        let refused = AccessRecord.refusal(unixMillis: 0, client: "10.0.0.9", clientCertificate: "CN=b", status: 400, bytes: 1, detail: "x")
        #expect(line(refused, json: false).contains(#" client=10.0.0.9 client_cert="CN=b" method=- "#))
    }

    /// Input refused before it made a request head: no method, path, duration or ID —
    /// `-` each — and the reason in `detail`, after the outcome.
    @Test func aRefusalsLineSaysWhyAndHasNoRequest() throws {
        let record = AccessRecord.refusal(
            unixMillis: 1_764_510_690_123, client: "10.0.0.9", status: 400, bytes: 171, detail: "bad_request: Host has an empty label")
        #expect(
            line(record, json: false)
                == "time=2025-11-30T13:51:30.123Z client=10.0.0.9 method=- path=- status=400 bytes=171 duration_ms=- queue_wait_ms=- outcome=refused detail=\"bad_request: Host has an empty label\" request_id=-\n"
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line(record, json: true).utf8)) as? [String: String])
        #expect(object["detail"] == "bad_request: Host has an empty label" && object["outcome"] == "refused")
        #expect(object["duration_ms"] == "-" && object["request_id"] == "-" && object.count == 11)
    }

    @Test func jsonLineParsesWithEveryValueAString() throws {
        let weird = "/a\"b\\c\n\t\u{1}\u{7F}é"
        let text = line(record(path: weird, shed: "queue_timeout", retries: 1), json: true)
        #expect(text.hasSuffix("}\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String])
        #expect(object["path"] == weird)
        #expect(object["time"] == "2025-11-30T13:51:30.123Z")
        #expect(object["status"] == "200" && object["bytes"] == "1234" && object["retries"] == "1")
        #expect(object["duration_ms"] == "1234.567" && object["queue_wait_ms"] == "0.005")
        #expect(object["shed_reason"] == "queue_timeout" && object["request_id"] == "0123456789abcdef")
        #expect(object.count == 13)
        // Control bytes never reach the line raw: a terminal or a log shipper sees escapes.
        #expect(!text.dropLast().utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }))
    }

    @Test func logfmtQuotesWhatNeedsQuoting() {
        func value(_ path: String) -> String {
            let text = line(record(path: path), json: false)
            let start = text.range(of: " path=")!.upperBound
            let end = text.range(of: " status=")!.lowerBound
            return String(text[start..<end])
        }
        #expect(value("/plain") == "/plain")
        #expect(value("/a?b=c") == #""/a?b=c""#)
        #expect(value("") == #""""#)
        #expect(value("/a b") == #""/a b""#)
        #expect(value("/é") == #""/é""#)
        #expect(value("a\"b\\\n\u{1}") == #""a\"b\\\n\u0001""#)
    }

    @Test func jsonEscapingMatchesTheTextVersionOnAnyString() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["a", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "😀", " ", "/"]
        for _ in 0..<2000 {
            let text = String((0..<Int.random(in: 0...12, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            var bytes: [UInt8] = []
            Array(text.utf8).withUnsafeBytes { JSONText.appendQuoted($0, into: &bytes) }
            let quoted = String(decoding: bytes, as: UTF8.self)
            #expect(quoted == JSONText.quote(text))
            let decoded = try? JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed) as? String
            #expect(decoded == text)
        }
    }

    @Test func numbersAndMilliseconds() {
        func text(_ body: (inout [UInt8]) -> Void) -> String {
            var bytes: [UInt8] = []
            body(&bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(text { AccessRecord.writeDecimal(0, into: &$0) } == "0")
        #expect(text { AccessRecord.writeDecimal(Int64.max, into: &$0) } == "9223372036854775807")
        #expect(text { AccessRecord.writeDecimal(-5, into: &$0) } == "0")
        #expect(text { AccessRecord.writeMilliseconds(1_234_567, into: &$0) } == "1234.567")
        #expect(text { AccessRecord.writeMilliseconds(5, into: &$0) } == "0.005")
        #expect(text { AccessRecord.writeMilliseconds(40, into: &$0) } == "0.040")
        #expect(text { AccessRecord.writeTimestamp(0, into: &$0) } == "1970-01-01T00:00:00.000Z")
        #expect(text { AccessRecord.writeTimestamp(951_825_599_999, into: &$0) } == "2000-02-29T11:59:59.999Z")
    }

    #if canImport(Glibc)
    /// Every day from 1970 to 2400 (leap years, centuries, 2000 and 2400) against the C library.
    @Test func civilDateAgreesWithGmtime() {
        var mismatches = 0
        for day in Int64(0)..<157_000 {
            var seconds = time_t(day * 86_400)
            var parts = tm()
            gmtime_r(&seconds, &parts)
            let date = AccessRecord.civilDate(daysSinceEpoch: day)
            if date.year != Int(parts.tm_year) + 1900 || date.month != Int(parts.tm_mon) + 1 || date.day != Int(parts.tm_mday) {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
    }
    #endif
}
