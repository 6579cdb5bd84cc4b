import NIOCore

/// One RESP2 value (https://redis.io/docs/latest/develop/reference/protocol-spec/).
///
/// Fluxgate needs a Redis client for its cluster mode and none is in the package set
/// it may build from, so this module holds a small one: the five RESP2 types, a
/// pipelined connection over SwiftNIO and scripts by SHA. It implements only what the
/// gateway sends (commands as arrays of bulk strings) and everything Redis may answer.
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    /// An error reply (`-ERR ...`, `-NOSCRIPT ...`): the server refused the command.
    case error(String)
    case integer(Int64)
    /// nil is the null bulk string (`$-1`).
    case bulkString([UInt8]?)
    /// nil is the null array (`*-1`).
    case array([RESPValue]?)

    /// Integer replies, and bulk strings holding a decimal integer (Lua numbers come back as integers).
    public var int: Int64? {
        switch self {
        case .integer(let value): value
        case .bulkString(let bytes?): Int64(String(decoding: bytes, as: UTF8.self))
        case .simpleString(let text): Int64(text)
        default: nil
        }
    }

    public var elements: [RESPValue]? {
        if case .array(let values?) = self { return values }
        return nil
    }
}

/// The RESP2 reply grammar, read incrementally from a buffer.
///
/// Bounded: a bulk string over ``maxBulkLength``, an array over ``maxElements`` or
/// nested deeper than ``maxDepth`` is refused (a server that sends one is not one we
/// talk to), as is any byte outside the grammar.
public struct RESPParser: Sendable {
    public static let maxBulkLength = 64 << 20
    public static let maxElements = 1 << 20
    public static let maxDepth = 8

    public struct Malformed: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { "malformed RESP reply: \(reason)" }
    }

    public init() {}

    /// The next complete value, consuming its bytes; nil (nothing consumed) when the
    /// buffer holds only part of one.
    public func parse(_ buffer: inout ByteBuffer) throws(Malformed) -> RESPValue? {
        var cursor = buffer.readerIndex
        guard let value = try parseValue(buffer, &cursor, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: cursor)
        return value
    }

    private func parseValue(_ buffer: ByteBuffer, _ cursor: inout Int, depth: Int) throws(Malformed) -> RESPValue? {
        guard depth <= Self.maxDepth else { throw Malformed(reason: "nested deeper than \(Self.maxDepth)") }
        guard let type = buffer.getInteger(at: cursor, as: UInt8.self) else { return nil }
        guard let line = try readLine(buffer, from: cursor + 1) else { return nil }
        var next = line.next
        switch type {
        case UInt8(ascii: "+"):
            cursor = next
            return .simpleString(String(decoding: line.bytes, as: UTF8.self))
        case UInt8(ascii: "-"):
            cursor = next
            return .error(String(decoding: line.bytes, as: UTF8.self))
        case UInt8(ascii: ":"):
            guard let value = Self.integer(line.bytes) else { throw Malformed(reason: "integer \"\(String(decoding: line.bytes, as: UTF8.self))\"") }
            cursor = next
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Self.integer(line.bytes), length >= -1, length <= Self.maxBulkLength else {
                throw Malformed(reason: "bulk length \"\(String(decoding: line.bytes, as: UTF8.self))\"")
            }
            if length == -1 {
                cursor = next
                return .bulkString(nil)
            }
            let count = Int(length)
            guard buffer.writerIndex - next >= count + 2 else { return nil }
            guard buffer.getInteger(at: next + count, as: UInt8.self) == UInt8(ascii: "\r"),
                buffer.getInteger(at: next + count + 1, as: UInt8.self) == UInt8(ascii: "\n")
            else { throw Malformed(reason: "bulk string not followed by CRLF") }
            let bytes = buffer.getBytes(at: next, length: count) ?? []
            cursor = next + count + 2
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let length = Self.integer(line.bytes), length >= -1, length <= Self.maxElements else {
                throw Malformed(reason: "array length \"\(String(decoding: line.bytes, as: UTF8.self))\"")
            }
            if length == -1 {
                cursor = next
                return .array(nil)
            }
            var values: [RESPValue] = []
            values.reserveCapacity(min(Int(length), 1024))
            for _ in 0..<length {
                guard let value = try parseValue(buffer, &next, depth: depth + 1) else { return nil }
                values.append(value)
            }
            cursor = next
            return .array(values)
        default:
            throw Malformed(reason: "unknown type byte 0x\(String(type, radix: 16))")
        }
    }

    /// The bytes up to CRLF (lines are short: types, lengths, integers, status text).
    private func readLine(_ buffer: ByteBuffer, from start: Int) throws(Malformed) -> (bytes: [UInt8], next: Int)? {
        let view = buffer.readableBytesView
        let base = buffer.readerIndex
        guard start - base <= view.count else { return nil }
        let slice = view[(view.startIndex + (start - base))..<view.endIndex]
        guard let cr = slice.firstIndex(of: UInt8(ascii: "\r")) else {
            if slice.count > 64 << 10 { throw Malformed(reason: "line longer than 64 KiB") }
            return nil
        }
        let crOffset = cr - view.startIndex + base
        guard let lf = buffer.getInteger(at: crOffset + 1, as: UInt8.self) else { return nil }
        guard lf == UInt8(ascii: "\n") else { throw Malformed(reason: "CR not followed by LF") }
        return (Array(slice[slice.startIndex..<cr]), crOffset + 2)
    }

    private static func integer(_ bytes: [UInt8]) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        return Int64(String(decoding: bytes, as: UTF8.self))
    }
}

/// Commands go out as RESP arrays of bulk strings.
public enum RESPEncoder {
    public static func encode(_ arguments: [String], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.utf8.count)\r\n")
            buffer.writeString(argument)
            buffer.writeString("\r\n")
        }
    }
}
