/// One access-log line's fields, and their spelling in logfmt or JSON.
///
/// Written straight into bytes, in a fixed field order, with nothing allocated: the
/// first version went through a `Logger.Metadata` dictionary, string interpolation and
/// a sort of the keys per line, and cost about 30 µs of CPU per request — with the log on,
/// the gateway served 40 % of its requests per second (docs/PERFORMANCE.md, "The access
/// log"). Values are written as JSON strings (every field, as before) or as logfmt
/// values, bare when safe and quoted otherwise.
public struct AccessRecord: Sendable, CustomStringConvertible {
    /// The status field: a code, or `-` for a response cut off before its head.
    public enum Status: Sendable, Equatable {
        case code(Int)
        case none
    }

    /// Wall-clock time of the exchange's end, milliseconds since 1970 (UTC).
    public var unixMillis: Int64
    public var client: String
    /// The subject of the client's verified TLS certificate (`tls.verify_client`), as
    /// RFC 4514 writes it — nginx's `$ssl_client_s_dn`; nil without one.
    public var clientCertificate: String?
    public var method: String
    public var path: String
    public var status: Status
    public var upstream: String?
    public var bytes: Int
    /// nil (`-`) for input refused before it made a request head: no request ran.
    public var durationMicros: Int64?
    public var queueWaitMicros: Int64?
    public var shedReason: String?
    public var retries: Int
    public var outcome: String
    /// Why the gateway refused input before it made a request head (`bad_request: Host
    /// has an empty label`, `request_timeout`): the answer's kind and the parser's rule.
    public var detail: String?
    /// nil (`-`) for input refused before it made a request head.
    public var requestID: RequestID?

    public init(
        unixMillis: Int64, client: String, method: String, path: String, status: Status, upstream: String?, bytes: Int,
        durationMicros: Int64?, queueWaitMicros: Int64?, shedReason: String?, retries: Int, outcome: String, detail: String? = nil,
        requestID: RequestID?, clientCertificate: String? = nil
    ) {
        self.unixMillis = unixMillis
        self.client = client
        self.clientCertificate = clientCertificate
        self.method = method
        self.path = path
        self.status = status
        self.upstream = upstream
        self.bytes = bytes
        self.durationMicros = durationMicros
        self.queueWaitMicros = queueWaitMicros
        self.shedReason = shedReason
        self.retries = retries
        self.outcome = outcome
        self.detail = detail
        self.requestID = requestID
    }

    /// The line for input answered before it made a request head (400, 408, 414, 431,
    /// 501, 505 — nginx logs these too): `method` and `path` as far as the request line
    /// was read (`-` before that), no duration, outcome `refused`, and the reason in
    /// `detail`.
    public static func refusal(
        unixMillis: Int64, client: String, clientCertificate: String? = nil, method: String = "-", path: String = "-", status: Int,
        bytes: Int, detail: String
    ) -> AccessRecord {
        AccessRecord(
            unixMillis: unixMillis, client: client, method: method, path: path, status: .code(status), upstream: nil, bytes: bytes,
            durationMicros: nil, queueWaitMicros: nil, shedReason: nil, retries: 0, outcome: "refused", detail: detail, requestID: nil,
            clientCertificate: clientCertificate)
    }

    /// The line in logfmt, newline included.
    public var description: String {
        var bytes: [UInt8] = []
        write(json: false, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the line (newline included): `time`, `client`, `client_cert`, `method`,
    /// `path`, `status`, `upstream`, `bytes`, `duration_ms`, `queue_wait_ms`,
    /// `shed_reason`, `retries`, `outcome`, `detail`, `request_id`; `client_cert`,
    /// `upstream`, `shed_reason`, `retries` and `detail` only when there is one
    /// (`retries` above 0).
    public func write(json: Bool, into out: inout [UInt8]) {
        var line = AccessLineWriter(json: json)
        if json { out.append(UInt8(ascii: "{")) }
        line.field("time", into: &out) { Self.writeTimestamp(unixMillis, into: &$0) }
        line.field("client", client, into: &out)
        if let clientCertificate { line.field("client_cert", clientCertificate, into: &out) }
        line.field("method", method, into: &out)
        line.field("path", path, into: &out)
        switch status {
        case .code(let code): line.field("status", into: &out) { Self.writeDecimal(Int64(code), into: &$0) }
        case .none: line.field("status", "-", into: &out)
        }
        if let upstream { line.field("upstream", upstream, into: &out) }
        line.field("bytes", into: &out) { Self.writeDecimal(Int64(bytes), into: &$0) }
        if let durationMicros {
            line.field("duration_ms", into: &out) { Self.writeMilliseconds(durationMicros, into: &$0) }
        } else {
            line.field("duration_ms", "-", into: &out)
        }
        if let queueWaitMicros {
            line.field("queue_wait_ms", into: &out) { Self.writeMilliseconds(queueWaitMicros, into: &$0) }
        } else {
            line.field("queue_wait_ms", "-", into: &out)
        }
        if let shedReason { line.field("shed_reason", shedReason, into: &out) }
        if retries > 0 { line.field("retries", into: &out) { Self.writeDecimal(Int64(retries), into: &$0) } }
        line.field("outcome", outcome, into: &out)
        if let detail { line.field("detail", detail, into: &out) }
        if let requestID {
            requestID.withUTF8 { id in line.field("request_id", bytes: id, into: &out) }
        } else {
            line.field("request_id", "-", into: &out)
        }
        if json { out.append(UInt8(ascii: "}")) }
        out.append(UInt8(ascii: "\n"))
    }

    // MARK: Numbers and times

    /// A non-negative decimal (negative values are written as 0: none of the fields can be).
    public static func writeDecimal(_ value: Int64, into out: inout [UInt8]) {
        var value = max(0, value)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: Int64's 19 digits fit
        withUnsafeMutableBytes(of: &digits) { buffer in
            var index = buffer.count
            repeat {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
            out.append(contentsOf: buffer[index...])
        }
    }

    /// Milliseconds with microsecond resolution, e.g. `0.412`, `1234.567`.
    public static func writeMilliseconds(_ micros: Int64, into out: inout [UInt8]) {
        let micros = max(0, micros)
        writeDecimal(micros / 1000, into: &out)
        let fraction = Int(micros % 1000)
        out.append(UInt8(ascii: "."))
        out.append(UInt8(ascii: "0") + UInt8(fraction / 100))
        out.append(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(fraction % 10))
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-30T13:51:30.123Z` (years 1970-9999).
    public static func writeTimestamp(_ unixMillis: Int64, into out: inout [UInt8]) {
        let millis = max(0, unixMillis)
        let seconds = millis / 1000
        let (year, month, day) = civilDate(daysSinceEpoch: seconds / 86_400)
        let secondOfDay = Int(seconds % 86_400)
        func two(_ value: Int) {
            out.append(UInt8(ascii: "0") + UInt8(value / 10 % 10))
            out.append(UInt8(ascii: "0") + UInt8(value % 10))
        }
        two(year / 100)
        two(year % 100)
        out.append(UInt8(ascii: "-"))
        two(month)
        out.append(UInt8(ascii: "-"))
        two(day)
        out.append(UInt8(ascii: "T"))
        two(secondOfDay / 3600)
        out.append(UInt8(ascii: ":"))
        two(secondOfDay / 60 % 60)
        out.append(UInt8(ascii: ":"))
        two(secondOfDay % 60)
        out.append(UInt8(ascii: "."))
        let ms = Int(millis % 1000)
        out.append(UInt8(ascii: "0") + UInt8(ms / 100))
        two(ms % 100)
        out.append(UInt8(ascii: "Z"))
    }

    /// The proleptic Gregorian date of a day counted from 1970-01-01 (day 0), by the
    /// usual era arithmetic (400-year eras of 146 097 days, years starting in March so
    /// that the leap day is the era-year's last). Written here because Foundation's
    /// calendar allocates per call and `gmtime_r` is not in this module's reach
    /// (FluxgateCore stays free of the C library); `AccessRecordTests` checks it
    /// against `gmtime_r` over every day from 1970 to 2400.
    public static func civilDate(daysSinceEpoch days: Int64) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468  // days from 0000-03-01
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097  // [0, 146096]
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365  // [0, 399]
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)  // [0, 365], from March 1
        let monthFromMarch = (5 * dayOfYear + 2) / 153  // [0, 11]
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}

/// Separators and quoting for one line: `"key":"value"` pairs joined by commas (JSON),
/// or `key=value` pairs joined by spaces (logfmt).
public struct AccessLineWriter {
    let json: Bool
    var first = true

    public init(json: Bool) {
        self.json = json
    }

    /// A field whose value `body` writes: digits and punctuation only, never quoted in
    /// logfmt, always in JSON.
    public mutating func field(_ key: StaticString, into out: inout [UInt8], _ body: (inout [UInt8]) -> Void) {
        writeKey(key, into: &out)
        if json { out.append(UInt8(ascii: "\"")) }
        body(&out)
        if json { out.append(UInt8(ascii: "\"")) }
    }

    public mutating func field(_ key: StaticString, _ value: String, into out: inout [UInt8]) {
        if let done: Void = value.utf8.withContiguousStorageIfAvailable({ field(key, bytes: UnsafeRawBufferPointer($0), into: &out) }) {
            return done
        }
        var copy = value
        copy.withUTF8 { field(key, bytes: UnsafeRawBufferPointer($0), into: &out) }
    }

    public mutating func field(_ key: StaticString, bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        writeKey(key, into: &out)
        writeValue(bytes, into: &out)
    }

    /// A value: quoted in JSON, and in logfmt unless it may stand bare.
    private func writeValue(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        if json || !Self.isBare(bytes) {
            JSONText.appendQuoted(bytes, into: &out)
        } else {
            out.append(contentsOf: bytes)
        }
    }

    /// A field with a key known only at run time (quoted in JSON; in logfmt written as
    /// it is — keys come from the gateway's own code).
    public mutating func field(named key: String, _ value: String, into out: inout [UInt8]) {
        separate(into: &out)
        if json {
            JSONText.appendQuoted(key, into: &out)
            out.append(UInt8(ascii: ":"))
        } else {
            out.append(contentsOf: key.utf8)
            out.append(UInt8(ascii: "="))
        }
        Array(value.utf8).withUnsafeBytes { writeValue($0, into: &out) }
    }

    private mutating func separate(into out: inout [UInt8]) {
        if !first { out.append(json ? UInt8(ascii: ",") : UInt8(ascii: " ")) }
        first = false
    }

    private mutating func writeKey(_ key: StaticString, into out: inout [UInt8]) {
        separate(into: &out)
        key.withUTF8Buffer { name in
            if json {
                out.append(UInt8(ascii: "\""))
                out.append(contentsOf: name)
                out.append(UInt8(ascii: "\""))
                out.append(UInt8(ascii: ":"))
            } else {
                out.append(contentsOf: name)
                out.append(UInt8(ascii: "="))
            }
        }
    }

    /// logfmt leaves a value bare when it is not empty and has no space, control byte,
    /// `"`, `=`, `\` or non-ASCII byte.
    public static func isBare(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return false }
        for byte in bytes where byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "\\") {
            return false
        }
        return true
    }
}
