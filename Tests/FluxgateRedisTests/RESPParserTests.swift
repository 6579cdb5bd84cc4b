import FluxgateRedis
import NIOCore
import Testing

struct RESPParserTests {
    private func parseAll(_ text: String) throws -> [RESPValue] {
        var buffer = ByteBuffer(string: text)
        var values: [RESPValue] = []
        while let value = try RESPParser().parse(&buffer) { values.append(value) }
        #expect(buffer.readableBytes == 0, "left unparsed: \(String(buffer: buffer))")
        return values
    }

    @Test func everyTypeIsRead() throws {
        let values = try parseAll("+OK\r\n-ERR wrong\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n")
        #expect(
            values == [
                .simpleString("OK"), .error("ERR wrong"), .integer(42), .integer(-7), .bulkString(Array("hello".utf8)),
                .bulkString([]), .bulkString(nil), .array(nil), .array([]),
                .array([.integer(1), .array([.bulkString([UInt8(ascii: "x")])])]),
            ])
    }

    @Test func bulkStringsMayHoldCRLF() throws {
        #expect(try parseAll("$4\r\na\r\nb\r\n") == [.bulkString(Array("a\r\nb".utf8))])
    }

    /// A reply arriving a byte at a time is reported incomplete, consuming nothing, until its last byte.
    @Test func partialRepliesConsumeNothing() throws {
        let text = "*3\r\n:1\r\n$3\r\nabc\r\n*1\r\n+OK\r\n"
        var buffer = ByteBuffer()
        for (index, byte) in text.utf8.enumerated() {
            buffer.writeInteger(byte)
            let before = buffer.readerIndex
            let value = try RESPParser().parse(&buffer)
            if index < text.utf8.count - 1 {
                #expect(value == nil)
                #expect(buffer.readerIndex == before)
            } else {
                #expect(value == .array([.integer(1), .bulkString(Array("abc".utf8)), .array([.simpleString("OK")])]))
            }
        }
    }

    @Test(arguments: [
        "?\r\n", ":12a\r\n", ":\r\n", "$-2\r\n", "$3\r\nabcd\r\n", "*-5\r\n", "+OK\rX", "$99999999999\r\n",
        String(repeating: "*1\r\n", count: 20) + ":1\r\n",
    ])
    func malformedRepliesAreRefused(_ text: String) {
        var buffer = ByteBuffer(string: text)
        #expect(throws: RESPParser.Malformed.self) { _ = try RESPParser().parse(&buffer) }
    }

    @Test func commandsAreArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RESPEncoder.encode(["SET", "k", "ä b"], into: &buffer)
        #expect(String(buffer: buffer) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nä b\r\n")
    }

    @Test func integersComeFromBulkStringsToo() {
        #expect(RESPValue.bulkString(Array("17".utf8)).int == 17)
        #expect(RESPValue.integer(3).int == 3)
        #expect(RESPValue.bulkString(nil).int == nil)
        #expect(RESPValue.error("1").int == nil)
    }

    @Test func scriptsAreNamedBySHA1() {
        // sha1("return 1"), as `redis-cli SCRIPT LOAD "return 1"` prints it.
        #expect(RedisScript("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    }
}
