import Crypto
import Foundation

/// HS256 JSON Web Tokens (RFC 7519 / RFC 7515 compact form) for the demo's login.
///
/// The HMAC is swift-crypto's. Only the compact framing is written here — two
/// base64url JSON segments and a signature — because the demo needs exactly one
/// algorithm and three claims, and jwt-kit would add a dependency tree for that.
/// Verification checks the header's `alg` (refusing `none` and everything else),
/// the signature in constant time (`HMAC.isValidAuthenticationCode`) and `exp`.
public struct HS256Token: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case malformed
        case unsupportedAlgorithm
        case badSignature
        case expired
    }

    public struct Claims: Codable, Equatable, Sendable {
        public var sub: String
        public var iat: Int
        public var exp: Int
        public var iss: String
    }

    private let key: SymmetricKey

    public init(secret: String) {
        self.key = SymmetricKey(data: Data(secret.utf8))
    }

    public func sign(subject: String, issuedAt: Int, lifetime: Int) -> String {
        let header = Self.base64URL(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let claims = Claims(sub: subject, iat: issuedAt, exp: issuedAt + lifetime, iss: "fluxor-demo")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let payload = Self.base64URL((try? encoder.encode(claims)) ?? Data())
        let signingInput = "\(header).\(payload)"
        let signature = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: key)
        return "\(signingInput).\(Self.base64URL(Data(signature)))"
    }

    public func verify(_ token: String, now: Int) throws(Failure) -> Claims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Self.decodeBase64URL(parts[0]),
            let payloadData = Self.decodeBase64URL(parts[1]), let signature = Self.decodeBase64URL(parts[2])
        else { throw .malformed }
        guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else { throw .malformed }
        guard header["alg"] as? String == "HS256" else { throw .unsupportedAlgorithm }
        let signingInput = Data("\(parts[0]).\(parts[1])".utf8)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key) else {
            throw .badSignature
        }
        guard let claims = try? JSONDecoder().decode(Claims.self, from: payloadData) else { throw .malformed }
        guard claims.exp > now else { throw .expired }
        return claims
    }

    /// HMAC-SHA256 of `input` (exposed for known-answer tests).
    static func mac(_ input: String, secret: String) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: Data(secret.utf8))))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL<S: StringProtocol>(_ text: S) -> Data? {
        guard text.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }), text.allSatisfy(\.isASCII) else {
            return nil
        }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
