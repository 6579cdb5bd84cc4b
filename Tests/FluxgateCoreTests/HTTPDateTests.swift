import Foundation
import Testing

@testable import FluxgateCore

struct HTTPDateTests {
    @Test func theRFCsExampleAndTheEpoch() {
        // RFC 9110 §5.6.7's example.
        #expect(HTTPDate.string(epochSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.string(epochSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.string(epochSeconds: 951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")  // a 400-year leap day
        #expect(HTTPDate.string(epochSeconds: 4_107_542_399) == "Sun, 28 Feb 2100 23:59:59 GMT")  // 2100 is not a leap year
        #expect(HTTPDate.string(epochSeconds: 4_107_542_400) == "Mon, 01 Mar 2100 00:00:00 GMT")
        #expect(HTTPDate.bytes(epochSeconds: -5).count == HTTPDate.length)
    }

    /// Against Foundation's formatter, with the format RFC 9110 gives, across four centuries.
    @Test func agreesWithFoundationsFormatter() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let seconds = Int64.random(in: 0...12_622_780_800, using: &generator)  // to 2370
            let ours = HTTPDate.string(epochSeconds: seconds)
            let theirs = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            #expect(ours == theirs, "at \(seconds)")
            if ours != theirs { return }
        }
    }

    @Test func theLineIsRebuiltOnlyWhenTheSecondChanges() {
        var date = DateFieldLine()
        var rebuilt = date.update(epochSeconds: 784_111_777)
        #expect(rebuilt)
        #expect(String(decoding: date.line, as: UTF8.self) == "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n")
        #expect(date.line.count == DateFieldLine.length)
        rebuilt = date.update(epochSeconds: 784_111_777)
        #expect(!rebuilt)
        rebuilt = date.update(epochSeconds: 784_111_778)
        #expect(rebuilt)
        #expect(String(decoding: date.line, as: UTF8.self) == "date: Sun, 06 Nov 1994 08:49:38 GMT\r\n")
    }

    /// The wall clock is read once per wall second, at its end, on the event's
    /// monotonic time: not per answer.
    @Test func theWallClockIsReadOncePerSecond() {
        var date = DateFieldLine()
        var reads = 0
        var wall: (seconds: Int64, nanoseconds: Int64) = (784_111_777, 900_000_000)  // 100 ms before the next second
        func update(_ milliseconds: Int64) -> Bool {
            date.update(now: MonotonicTime(nanoseconds: milliseconds * 1_000_000)) {
                reads += 1
                return wall
            }
        }
        var rebuilt = update(0)
        #expect(rebuilt && reads == 1)
        rebuilt = update(50)
        #expect(!rebuilt && reads == 1, "within the second: no clock read")
        wall = (784_111_778, 0)
        rebuilt = update(100)
        #expect(rebuilt && reads == 2)
        #expect(String(decoding: date.line, as: UTF8.self) == "date: Sun, 06 Nov 1994 08:49:38 GMT\r\n")
        rebuilt = update(1_099)
        #expect(!rebuilt && reads == 2)
        wall = (784_111_779, 0)
        rebuilt = update(1_100)
        #expect(rebuilt && reads == 3)
        // A wall clock stepped back mid-second: read again a millisecond on at the least.
        wall = (784_111_779, 999_999_999)
        _ = update(2_100)
        #expect(reads == 4)
        _ = update(2_100)
        #expect(reads == 4)
        _ = update(2_101)
        #expect(reads == 5)
    }
}
