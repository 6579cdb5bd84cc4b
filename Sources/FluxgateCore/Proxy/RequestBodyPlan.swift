/// Where a request body waits before its request is admitted — nginx's
/// `proxy_request_buffering on` (the default there), bounded in memory and on disk.
///
/// An admitted request holds one of the upstreams' slots (the 67 % rule) until it ends.
/// A body that streams once admitted lets its client decide how long that is: one that
/// stalls after 64 KiB holds the slot until `timeouts.client_body`, one that trickles
/// holds it as long as it trickles, and thirty such clients took every slot of a
/// thirteen-slot gateway by hand (docs/SECURITY.md). So the whole body is read first:
///
/// | body | held in | admitted |
/// |---|---|---|
/// | none | — | on its head |
/// | `Content-Length` ≤ `request_buffer_bytes` | memory | when complete |
/// | `Content-Length` > `request_buffer_bytes` | a spool file (`request_spool_dir`), its length reserved from `request_spool_bytes` | when complete |
/// | chunked | memory up to `request_buffer_bytes`, then a spool file reserving `max_body_bytes` (given back at the end) | when complete |
/// | spooling off (`request_spool_bytes: 0`) or the spool budget taken | — | when memory is full: the rest streams (HAProxy's and Envoy's way) |
/// | a path in `stream_body_prefixes` | — | on its head: the body streams (nginx's `proxy_request_buffering off`) |
///
/// Pure: sizes in, a plan out; the handler opens the file and the budget is shared
/// by every event loop (``SpoolBudget``).
public enum RequestBodyPlan: Equatable, Sendable {
    /// Admitted on its head: no body, or buffering is off.
    case admitNow
    /// Read into memory; admitted when complete (or when it outgrows memory, for chunked).
    case memory
    /// Read into a spool file after reserving `reserve` bytes of the budget.
    case spool(reserve: Int)

    /// The plan for a request as its head arrives.
    /// - Parameters:
    ///   - contentLength: the declared length, nil when chunked (or no body).
    ///   - chunked: the body is chunked.
    ///   - memoryBytes: `limits.request_buffer_bytes` (0: no buffering at all).
    ///   - spoolBytes: `limits.request_spool_bytes` (0: no spooling).
    ///   - streamed: the path is in `limits.stream_body_prefixes`.
    public static func atHead(
        contentLength: Int?, chunked: Bool, memoryBytes: Int, spoolBytes: Int, streamed: Bool = false
    ) -> RequestBodyPlan {
        let length = contentLength ?? 0
        guard length > 0 || chunked, memoryBytes > 0, !streamed else { return .admitNow }
        if chunked || length <= memoryBytes { return .memory }
        return spoolBytes > 0 ? .spool(reserve: length) : .admitNow
    }

    /// The plan for a chunked body that just outgrew memory: a spool reserving the
    /// most it may still be, or streaming.
    public static func chunkedOverflow(maxBodyBytes: Int, spoolBytes: Int) -> RequestBodyPlan {
        spoolBytes > 0 ? .spool(reserve: maxBodyBytes) : .admitNow
    }
}

/// The disk the spooled request bodies may take at once (`limits.request_spool_bytes`),
/// counted by reservation: a body reserves its declared length (a chunked one the most
/// it may be) before its first byte is written, so the budget can never be overrun, and
/// gives back what it did not use. A body refused by the budget is not refused by the
/// gateway: it streams after admission, as with spooling off.
public struct SpoolBudget: Sendable, Equatable {
    /// The budget; a reload may lower it below what is reserved (new reservations wait
    /// for the old ones to end).
    public var limit: Int
    public private(set) var reserved = 0

    public init(limit: Int) { self.limit = limit }

    /// Takes `bytes` of the budget if they are free.
    public mutating func reserve(_ bytes: Int) -> Bool {
        guard bytes >= 0, bytes <= limit - reserved else { return false }
        reserved += bytes
        return true
    }

    /// Gives back `bytes` a reservation holds (the whole of it when the body ends; the
    /// unused part when a chunked body's length became known).
    public mutating func release(_ bytes: Int) {
        reserved = max(0, reserved - max(0, bytes))
    }
}
