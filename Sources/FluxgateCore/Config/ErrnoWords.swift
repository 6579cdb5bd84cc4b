#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The system's text for an errno, lowercased to sit inside a sentence ("cannot read
/// /tmp: is a directory"): the one place the gateway's messages turn an errno into words.
public func errnoWords(_ code: Int32) -> String {
    String(cString: strerror(code)).lowercased()
}
