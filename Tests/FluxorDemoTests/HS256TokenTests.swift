import Foundation
import Testing

@testable import FluxorDemo

struct HS256TokenTests {
    let signer = HS256Token(secret: "test-secret-0123456789")

    @Test func signsAndVerifies() throws {
        let token = signer.sign(subject: "dev@example.com", issuedAt: 1000, lifetime: 60)
        #expect(token.split(separator: ".").count == 3)
        let claims = try signer.verify(token, now: 1059)
        #expect(claims == .init(sub: "dev@example.com", iat: 1000, exp: 1060, iss: "fluxor-demo"))
        #expect(throws: HS256Token.Failure.expired) { try signer.verify(token, now: 1060) }
    }

    /// A known-answer check against an independent HMAC-SHA256 computation
    /// (Python: hmac.new(b"secret", b"a.b", hashlib.sha256), base64url without padding).
    @Test func signatureMatchesAKnownAnswer() {
        let key = "secret"
        let expected = "sbh7-OGGafGEtAYeHeo5APUejXcSJjSgpMkJURRbDuA"
        let signer = HS256Token(secret: key)
        let token = signer.sign(subject: "x@y.z", issuedAt: 0, lifetime: 1)
        #expect(!token.isEmpty)
        #expect(HS256Token.base64URL(HS256Token.mac("a.b", secret: key)) == expected)
    }

    @Test func refusesForgeries() {
        let token = signer.sign(subject: "a@b.c", issuedAt: 1000, lifetime: 60)
        let parts = token.split(separator: ".").map(String.init)
        #expect(throws: HS256Token.Failure.badSignature) { try HS256Token(secret: "other-secret-0123456789").verify(token, now: 1000) }
        #expect(throws: HS256Token.Failure.malformed) { try signer.verify("a.b", now: 1000) }
        #expect(throws: HS256Token.Failure.malformed) { try signer.verify("\(parts[0]).\(parts[1]).@@@", now: 1000) }
        let none = HS256Token.base64URL(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
        #expect(throws: HS256Token.Failure.unsupportedAlgorithm) { try signer.verify("\(none).\(parts[1]).", now: 1000) }
        let swapped = HS256Token.base64URL(Data(#"{"sub":"root","iat":1000,"exp":99999,"iss":"fluxor-demo"}"#.utf8))
        #expect(throws: HS256Token.Failure.badSignature) { try signer.verify("\(parts[0]).\(swapped).\(parts[2])", now: 1000) }
    }
}
