/// Request-target rules (RFC 9112 §3.2, RFC 3986 §6): the authority of an
/// absolute-form target, the form the target goes upstream in, and the path as routes
/// see it.
///
/// The target is forwarded as the client sent it, except that an absolute-form target
/// goes upstream in origin-form (below); routes (priority classes) match the normalised
/// path, so `/%61pi/x`, `/api//x` and `/api/auth/../x` are all seen where the upstream
/// will see them, and a prefix matches whole segments only (`/api` matches `/api` and
/// `/api/x`, never `/apix`).
public enum RequestTarget {
    /// Where the origin-form of an absolute-form target starts: the offset of the `/`
    /// or `?` after `scheme://authority`, or the target's length when nothing follows
    /// the authority (the origin-form is then `/`); nil for origin-form and
    /// asterisk-form targets, which go upstream as they are.
    ///
    /// RFC 9112 §3.2.1: a client sending a request to an origin server sends the path
    /// and query only — the gateway is that client. nginx 1.22.1 rewrites an
    /// absolute-form target so, HAProxy 2.6.12 forwards it as it came (both run side by
    /// side on this machine: docs/SECURITY.md). An application router that matches the
    /// raw target — the demo upstream's does — answered 404 to every absolute-form
    /// request the gateway forwarded before 2026-12-05; now it sees the path the
    /// gateway's routes matched. The authority it drops agrees with `Host`
    /// (``hostDisagrees(target:host:)``), which goes on unchanged.
    ///
    /// | target                    | origin-form start | upstream target |
    /// |---------------------------|-------------------|-----------------|
    /// | `/a?b`                    | nil               | `/a?b`          |
    /// | `*`                       | nil               | `*`             |
    /// | `http://h:8080/a?b`       | 13                | `/a?b`          |
    /// | `http://h?b`              | 8                 | `/?b`           |
    /// | `https://h`               | 9 (= length)      | `/`             |
    public static func originFormStart(_ target: UnsafeRawBufferPointer) -> Int? {
        guard let first = target.first, first != UInt8(ascii: "/"), first != UInt8(ascii: "*"),
            let colon = target.firstIndex(of: UInt8(ascii: ":")), colon + 2 < target.count,
            target[colon + 1] == UInt8(ascii: "/"), target[colon + 2] == UInt8(ascii: "/")
        else { return nil }
        var index = colon + 3
        while index < target.count, target[index] != UInt8(ascii: "/"), target[index] != UInt8(ascii: "?") { index += 1 }
        return index
    }

    /// Whether an absolute-form target's authority and the `Host` field name different
    /// hosts (answered 400 `bad_host`; RFC 9112 §3.2.2 has an origin server take the
    /// target's, but the upstream may read `Host`, so the two must agree). Compared as
    /// RFC 9110 §4.2.3 normalises: case-insensitive, and the scheme's default port
    /// (`:80` for http, `:443` for https) the same as none — `http://h:80/x` with
    /// `Host: h` agrees (HAProxy 2.6.12 agrees too; until 2026-12-05 the gateway
    /// refused it). False for an origin-form target.
    public static func hostDisagrees(target: String, host: String) -> Bool {
        guard let authority = absoluteAuthority(target) else { return false }
        // `http:` or `https:` (absoluteAuthority checked the scheme): the fifth byte tells.
        let https = target.utf8.dropFirst(4).first.map { $0 | 0x20 == UInt8(ascii: "s") } ?? false
        let defaultPort = https ? ":443" : ":80"
        func normalised<Text: StringProtocol>(_ text: Text) -> String {
            var value = text.lowercased()
            if value.hasSuffix(defaultPort) {
                value.removeLast(defaultPort.count)
            } else if value.hasSuffix(":") {
                value.removeLast()  // an empty port (RFC 3986 §3.2.3) is the default one
            }
            return value
        }
        return normalised(authority) != normalised(host.trimmingSpaces())
    }

    /// The authority of an absolute-form target (`http://host:port/path`), or nil
    /// for origin-form (`/path`) and asterisk-form (`*`).
    public static func absoluteAuthority(_ target: String) -> Substring? {
        // Origin form, the common case, costs one byte comparison.
        guard target.utf8.first != UInt8(ascii: "/"), let schemeEnd = target.range(of: "://") else { return nil }
        let scheme = target[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = target[schemeEnd.upperBound...]
        let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        return rest[..<end]
    }

    /// The path alone: no scheme and authority, no query — of an absolute-form target,
    /// the path of the origin-form it goes upstream in (``originFormStart(_:)``, so
    /// `http://h?x/api` is `/`, as the upstream gets `/?x/api`; until 2026-12-05 the
    /// path was looked for past the query, and routes, `stream_body_prefixes` and the
    /// `..` check read `/api`). Byte-level throughout: a `/` or `?` followed by a
    /// combining mark is one `Character` to Swift, still a separator to HTTP.
    static func rawPath(_ target: String) -> Substring {
        let utf8 = target.utf8
        var start = utf8.startIndex
        if utf8.first != UInt8(ascii: "/"),
            let origin = utf8.withContiguousStorageIfAvailable({ originFormStart(UnsafeRawBufferPointer($0)) })
                ?? Array(utf8).withUnsafeBytes({ originFormStart($0) })
        {
            start = utf8.index(utf8.startIndex, offsetBy: origin)
            if start == utf8.endIndex || utf8[start] == UInt8(ascii: "?") { return "/" }
        }
        let end = utf8[start...].firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? utf8.endIndex
        return Substring(utf8[start..<end])
    }

    /// Whether the path needs normalising at all: the common request (no `%`, no
    /// `//`, no `.` segment) is answered by one scan without building anything.
    static func isPlain(_ path: Substring) -> Bool { isPlain(bytes: path.utf8) }

    /// The scan behind ``isPlain(_:)``, on any bytes; it stops at a `?` or `#` (the
    /// query, which a path from ``rawPath(_:)`` no longer has).
    @inline(__always)
    static func isPlain<Bytes: Sequence<UInt8>>(bytes: Bytes) -> Bool {
        var previous: UInt8 = 0
        for byte in bytes {
            if byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") { return true }
            if byte == UInt8(ascii: "%") { return false }
            if previous == UInt8(ascii: "/") && (byte == UInt8(ascii: "/") || byte == UInt8(ascii: ".")) { return false }
            previous = byte
        }
        return true
    }

    /// Whether `..` segments take the path above the root (answered 400). One scan
    /// and no allocation for a path that needs no normalising.
    public static func climbsAboveRoot(_ target: String) -> Bool {
        let path = rawPath(target)
        return isPlain(path) ? false : normalizedPath(target) == nil
    }

    /// As above, on the target's bytes as they arrived: an origin-form target whose
    /// path is plain (the common request) is answered by one scan of raw bytes,
    /// without the `String` views the general rule walks (1.8 % of the gateway's user
    /// time under `wrk GET /health` when every request took that path).
    public static func climbsAboveRoot(bytes target: UnsafeRawBufferPointer) -> Bool {
        if target.first == UInt8(ascii: "/"), isPlain(bytes: target) { return false }
        return climbsAboveRoot(String(decoding: target, as: UTF8.self))
    }

    /// The normalised path: unreserved characters percent-decoded (RFC 3986 §6.2.2.2),
    /// empty segments merged (nginx's `merge_slashes`), `.` and `..` segments
    /// resolved (§5.2.4). Nil when `..` climbs above the root — nginx answers such a
    /// request 400, and so does the gateway.
    public static func normalizedPath(_ target: String) -> String? {
        let path = rawPath(target)
        if isPlain(path) { return String(path) }
        let slash = UInt8(ascii: "/")
        let dot = UInt8(ascii: ".")
        var segments: [ArraySlice<UInt8>] = []
        for segment in decodeUnreserved(path).split(separator: slash, omittingEmptySubsequences: true) {
            if segment.elementsEqual([dot]) { continue }
            if segment.elementsEqual([dot, dot]) {
                guard !segments.isEmpty else { return nil }
                segments.removeLast()
                continue
            }
            segments.append(segment)
        }
        let bytes = Array(path.utf8)
        let trailingSlash = bytes.last == slash || bytes.suffix(2).elementsEqual([slash, dot]) || bytes.suffix(3).elementsEqual([slash, dot, dot])
        var output: [UInt8] = [slash]
        for (index, segment) in segments.enumerated() {
            if index > 0 { output.append(slash) }
            output.append(contentsOf: segment)
        }
        if trailingSlash && !segments.isEmpty { output.append(slash) }
        return String(decoding: output, as: UTF8.self)
    }

    /// `%41` → `A` for ALPHA / DIGIT / `-` `.` `_` `~`; other escapes stay as they are
    /// (`%2F` is data, not a separator); a `%` that starts no escape becomes `%25`.
    static func decodeUnreserved(_ path: Substring) -> [UInt8] {
        let bytes = Array(path.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                    // A stray `%` is written as `%25`: decoding must never assemble a new
                    // escape (`%%32e` → `%2e`) that a second decoder would read as `.`
                    // (found by the fuzzer: normalising twice must change nothing).
                    output.append(contentsOf: Array("%25".utf8))
                    index += 1
                    continue
                }
                let decoded = high << 4 | low
                if isUnreserved(decoded) {
                    output.append(decoded)
                    index += 3
                    continue
                }
            }
            output.append(bytes[index])
            index += 1
        }
        return output
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// The path routes match against: the target's path as sent when it is plain, else
    /// normalised (dot segments, percent-encoded unreserved bytes); nil when it cannot be.
    static func routingPath(_ target: String) -> Substring? {
        let raw = rawPath(target)
        if isPlain(raw) { return raw }
        return normalizedPath(target).map { $0[...] }
    }

    /// Whether any of `prefixes` matches the target's path at a segment boundary.
    public static func matchesAny(_ prefixes: [String], target: String) -> Bool {
        guard !prefixes.isEmpty, let path = routingPath(target) else { return false }
        return prefixes.contains { matches(prefix: $0, path: path) }
    }

    /// As above, on the target's bytes: a plain origin-form path (the common request)
    /// is matched in place; any other target goes the `String` way.
    public static func matchesAny(_ prefixes: [String], target: UnsafeRawBufferPointer) -> Bool {
        guard !prefixes.isEmpty else { return false }
        if let path = plainPath(target) { return prefixes.contains { matches(prefix: $0, path: path) } }
        return matchesAny(prefixes, target: String(decoding: target, as: UTF8.self))
    }

    /// The path of an origin-form target whose path needs no normalising (``isPlain(_:)``),
    /// up to its query: what ``routingPath(_:)`` returns for it, without a `String`.
    /// Nil for any other target.
    public static func plainPath(_ target: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard target.first == UInt8(ascii: "/"), isPlain(bytes: target) else { return nil }
        let end = target.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? target.count
        return UnsafeRawBufferPointer(rebasing: target[0..<end])
    }

    /// Whether `prefix` matches `path` at a segment boundary.
    public static func matches<Path: StringProtocol>(prefix: String, path: Path) -> Bool {
        matches(prefix: prefix, path: path.utf8)
    }

    /// As above, on the path's bytes.
    public static func matches<Path: Collection<UInt8>>(prefix: String, path: Path) -> Bool {
        guard path.starts(with: prefix.utf8) else { return false }
        if path.count == prefix.utf8.count || prefix.utf8.last == UInt8(ascii: "/") { return true }
        return path[path.index(path.startIndex, offsetBy: prefix.utf8.count)] == UInt8(ascii: "/")
    }
}
