/// The standard Prometheus process metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_start_time_seconds`, …), which every
/// official Prometheus client library exports and no package on this project's list
/// does for Swift: read from Linux's `/proc/self/stat` (proc(5)). Parsing only; the
/// gateway reads the files.
public struct ProcessStat: Sendable, Equatable {
    /// User plus system CPU time, in clock ticks.
    public var cpuTicks: Int
    /// When the process started, in clock ticks after boot.
    public var startTicks: Int
    public var virtualBytes: Int
    public var residentPages: Int

    public init(cpuTicks: Int, startTicks: Int, virtualBytes: Int, residentPages: Int) {
        self.cpuTicks = cpuTicks
        self.startTicks = startTicks
        self.virtualBytes = virtualBytes
        self.residentPages = residentPages
    }

    /// Parses one `/proc/PID/stat` line; nil when it does not have the fields. The
    /// command name (field 2) is in parentheses and may itself contain spaces and
    /// parentheses, so the fields are counted from the last `)`.
    public static func parse(_ line: String) -> ProcessStat? {
        guard let close = line.lastIndex(of: ")") else { return nil }
        // Fields 3… (state is field 3): utime 14, stime 15, starttime 22, vsize 23, rss 24.
        let fields = line[line.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Int? {
            let index = number - 3
            return index < fields.count ? Int(fields[index]) : nil
        }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23), let rss = field(24)
        else { return nil }
        return ProcessStat(cpuTicks: utime + stime, startTicks: start, virtualBytes: vsize, residentPages: rss)
    }

    /// The boot time (`btime`, seconds since the epoch) from `/proc/stat`.
    public static func bootTime(fromProcStat text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Int(line.dropFirst(6).trimmingPrefix(while: { $0 == " " }))
        }
        return nil
    }
}
