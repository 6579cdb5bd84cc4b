import Foundation
import Testing

@testable import FluxorDemo

struct JSONValidatorTests {
    func valid(_ text: String) -> Bool { Array(text.utf8).withUnsafeBytes(JSONValidator.isObject) }

    @Test(arguments: [
        "{}", " { } ", #"{"a":1}"#, #"{"a":[1,2.5,-3e10,0.0E-2,true,false,null,"x\n\u00e9\"",{}]}"#, "\n{\"k\" : [ ] }\r\n",
        #"{"a":{"b":{"c":[[[]]]}}}"#, #"{"é":"ünïcode 日本"}"#,
    ])
    func acceptsObjects(text: String) {
        #expect(valid(text))
    }

    @Test(arguments: [
        "", "[]", "1", "\"s\"", "{", "}", "{a:1}", #"{"a":}"#, #"{"a":1,}"#, #"{"a":1 "b":2}"#, #"{"a":01}"#, #"{"a":1.}"#,
        #"{"a":.5}"#, #"{"a":-}"#, #"{"a":1e}"#, #"{"a":tru}"#, #"{"a":"\x"}"#, #"{"a":"\u12"}"#, "{\"a\":\"\u{1}\"}",
        #"{"a":[1,]}"#, #"{} {}"#, #"{"a":NaN}"#, #"{"a":+1}"#,
    ])
    func refusesEverythingElse(text: String) {
        #expect(!valid(text))
    }

    @Test func depthIsBounded() {
        let deep = "{\"a\":" + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}"
        #expect(!valid(deep))
    }

    /// Agreement with Foundation on the load-test payload and random mutations of it.
    @Test func agreesWithFoundation() throws {
        let payload = #"{"items":[{"id":1,"name":"item-1","price":1.5,"tags":["a","b"]},{"id":2,"name":"x","price":-0.25e3,"tags":[]}]}"#
        var generator = SystemRandomNumberGenerator()
        var bytes = Array(payload.utf8)
        #expect(bytes.withUnsafeBytes(JSONValidator.isObject))
        let alphabet = Array(#"{}[],:"\ 0123456789.-eEtrufalsn"#.utf8)
        for _ in 0..<2000 {
            bytes = Array(payload.utf8)
            let position = Int.random(in: 0..<bytes.count, using: &generator)
            bytes[position] = alphabet.randomElement(using: &generator)!
            let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any]
            #expect(bytes.withUnsafeBytes(JSONValidator.isObject) == foundation, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }
}
