import FluxgateCore
import NIOHTTP1

/// Builds the heads that cross the gateway (RFC 9110 §7.6 proxy rules).
///
/// Request: hop-by-hop fields removed (``HopByHopPolicy``), `X-Forwarded-For`
/// appended with the client address, `X-Forwarded-Proto` and `X-Forwarded-Host` set,
/// `X-Request-ID` kept or created, `Expect` removed (the gateway answers
/// `100 Continue` itself, as nginx does), HTTP/1.1 upstream whatever the client spoke.
/// Response: hop-by-hop fields removed, `X-Request-ID` returned, framing and
/// `Connection` fitted to the client's HTTP version.
enum HeaderRewriter {
    struct RequestFacts {
        var requestID: String?
        var expectsContinue = false
        var hasHost = false
        var contentLength: Int?
        var invalidContentLength = false
    }

    /// One pass over the client's fields, collecting what the proxy decides on.
    static func inspect(_ headers: HTTPHeaders) -> (RequestFacts, HopByHopPolicy) {
        var facts = RequestFacts()
        var policy = HopByHopPolicy()
        for (name, value) in headers {
            switch name.utf8.count {
            case 4 where HeaderName.equals(name, lowercase: "host"):
                facts.hasHost = true
            case 6 where HeaderName.equals(name, lowercase: "expect"):
                if value.trimmingSpaces().lowercased() == "100-continue" { facts.expectsContinue = true }
            case 10 where HeaderName.equals(name, lowercase: "connection"):
                policy.noteConnectionHeader(value)
            case 12 where HeaderName.equals(name, lowercase: "x-request-id"):
                if RequestIDGenerator.isAcceptable(value) { facts.requestID = value }
            case 14 where HeaderName.equals(name, lowercase: "content-length"):
                if let length = Int(value), length >= 0 { facts.contentLength = length } else { facts.invalidContentLength = true }
            default:
                break
            }
        }
        return (facts, policy)
    }

    static func upstreamRequestHead(
        _ head: HTTPRequestHead, policy: HopByHopPolicy, facts: RequestFacts, requestID: String,
        clientAddress: String, upstreamAuthority: String
    ) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 4)
        var forwardedFor: String? = nil
        var forwardedHost: String? = nil
        for (name, value) in head.headers {
            if policy.isHopByHop(name) { continue }
            switch name.utf8.count {
            case 4 where HeaderName.equals(name, lowercase: "host"):
                forwardedHost = value
            case 6 where HeaderName.equals(name, lowercase: "expect"):
                continue
            case 12 where HeaderName.equals(name, lowercase: "x-request-id"):
                continue
            case 15 where HeaderName.equals(name, lowercase: "x-forwarded-for"):
                forwardedFor = forwardedFor.map { "\($0), \(value)" } ?? value
                continue
            case 16 where HeaderName.equals(name, lowercase: "x-forwarded-host"),
                17 where HeaderName.equals(name, lowercase: "x-forwarded-proto"):
                continue
            default:
                break
            }
            headers.add(name: name, value: value)
        }
        if !facts.hasHost { headers.add(name: "host", value: upstreamAuthority) }
        headers.add(name: "x-forwarded-for", value: forwardedFor.map { "\($0), \(clientAddress)" } ?? clientAddress)
        headers.add(name: "x-forwarded-proto", value: "http")
        if let forwardedHost { headers.add(name: "x-forwarded-host", value: forwardedHost) }
        headers.add(name: "x-request-id", value: requestID)
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)
    }

    /// The client-facing head and whether the client connection can stay open after it.
    static func clientResponseHead(
        _ head: HTTPResponseHead, exchange: Exchange, isHeadRequest: Bool
    ) -> (HTTPResponseHead, keepAlive: Bool) {
        var policy = HopByHopPolicy()
        var hasContentLength = false
        for (name, value) in head.headers {
            if HeaderName.equals(name, lowercase: "connection") { policy.noteConnectionHeader(value) }
            if HeaderName.equals(name, lowercase: "content-length") { hasContentLength = true }
        }
        let toHTTP10 = exchange.clientVersion.major == 1 && exchange.clientVersion.minor == 0
        var keepAlive = exchange.clientKeepAlive && exchange.requestComplete
        let bodyless = isHeadRequest || head.status == .noContent || head.status == .notModified
            || head.status.code < 200
        if toHTTP10 && !hasContentLength && !bodyless {
            // HTTP/1.0 has no chunked framing: the body ends when the connection does.
            keepAlive = false
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 2)
        for (name, value) in head.headers {
            if policy.isHopByHop(name) { continue }
            if HeaderName.equals(name, lowercase: "x-request-id") { continue }
            if toHTTP10 && HeaderName.equals(name, lowercase: "transfer-encoding") { continue }
            headers.add(name: name, value: value)
        }
        headers.add(name: "x-request-id", value: exchange.requestID)
        if !keepAlive {
            headers.add(name: "connection", value: "close")
        } else if toHTTP10 {
            headers.add(name: "connection", value: "keep-alive")
        }
        let version: HTTPVersion = toHTTP10 ? .http1_0 : .http1_1
        return (HTTPResponseHead(version: version, status: head.status, headers: headers), keepAlive)
    }
}

