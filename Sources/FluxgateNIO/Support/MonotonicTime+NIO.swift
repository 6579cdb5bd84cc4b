import FluxgateCore
import NIOCore

/// The pure core's clock (``MonotonicTime``) and NIO's (``NIODeadline``) count the same
/// uptime nanoseconds; these convert between them in one place.
extension MonotonicTime {
    init(_ deadline: NIODeadline) {
        self.init(nanoseconds: Int64(deadline.uptimeNanoseconds))
    }

    /// Now, on NIO's clock (for code that has no event loop at hand).
    static var current: MonotonicTime { MonotonicTime(NIODeadline.now()) }
}

extension NIODeadline {
    init(_ time: MonotonicTime) {
        self = .uptimeNanoseconds(UInt64(max(0, time.nanoseconds)))
    }
}
