import Crypto
import NIOSSL
import X509

/// What the upstream learns of a client's verified certificate (`tls.verify_client`):
/// one `X-Forwarded-Client-Cert` field in Envoy's format (by its documentation) —
/// `Hash=<SHA-256 of the DER, hex>;Subject="<RFC 4514 name>"`, then `URI=` and `DNS=` for
/// each such subject alternative name — built once per connection, after its handshake.
/// A client's own field of that name is never forwarded from a peer outside
/// `trusted_proxies` (``HeaderName/Kind/forwardedClaim``), so an upstream can believe it.
enum ForwardedClientCertificate {
    /// The field's value for `certificate` (which the handshake verified) and its
    /// subject as RFC 4514 writes it (the access log's `client_cert`), nil when it cannot
    /// be read as X.509 (swift-certificates) — then nothing is forwarded or logged.
    static func read(_ certificate: NIOSSLCertificate) -> (value: String, subject: String)? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        let hash = SHA256.hash(data: der).map { hex($0) }.joined()
        let subject = parsed.subject.description
        var value = "Hash=\(hash);Subject=\(quoted(subject))"
        if let names = try? parsed.extensions.subjectAlternativeNames {
            for name in names {
                switch name {
                case .uniformResourceIdentifier(let uri): value += ";URI=\(quoted(uri))"
                case .dnsName(let dns): value += ";DNS=\(quoted(dns))"
                default: break
                }
            }
        }
        return (value, subject)
    }

    /// `text` in double quotes, `"` and `\` escaped with a backslash — and every byte
    /// outside printable ASCII (a control character, CR or LF above all, or UTF-8) written
    /// as `\xHH`: a certificate's names are the client's words, and must not end or
    /// split the field they travel in.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append("\\")
                out.append(Character(Unicode.Scalar(byte)))
            case 0x20...0x7E:
                out.append(Character(Unicode.Scalar(byte)))
            default:
                out += "\\x" + hex(byte)
            }
        }
        return out + "\""
    }

    /// Two lowercase hex digits.
    static func hex(_ byte: UInt8) -> String {
        byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
    }
}
