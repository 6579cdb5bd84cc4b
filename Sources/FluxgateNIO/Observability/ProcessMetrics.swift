import FluxgateCore
import Foundation

/// The process's own figures for `/metrics`, under the names every official Prometheus
/// client library uses (`process_*`), so the usual dashboards and alerts (descriptors
/// near the limit, resident memory, CPU) work unchanged. Linux only (`/proc`); elsewhere
/// nothing is reported. Read at each scrape.
struct ProcessMetrics: Sendable {
    var cpuTicks: Int
    var ticksPerSecond: Double
    var residentBytes: Int
    var virtualBytes: Int
    var startTimeSeconds: Double
    var openDescriptors: Int
    var maxDescriptors: Int

    static func read() -> ProcessMetrics? {
        #if os(Linux)
        guard let line = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let stat = ProcessStat.parse(line), let boot = bootTime
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ProcessMetrics(
            cpuTicks: stat.cpuTicks, ticksPerSecond: ticks, residentBytes: stat.residentPages * Int(sysconf(Int32(_SC_PAGESIZE))),
            virtualBytes: stat.virtualBytes, startTimeSeconds: Double(boot) + Double(stat.startTicks) / ticks,
            openDescriptors: openDescriptorCount(), maxDescriptors: DescriptorLimit.current)
        #else
        return nil
        #endif
    }

    #if os(Linux)
    private static let bootTime: Int? = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8))
        .flatMap(ProcessStat.bootTime(fromProcStat:))

    /// Entries of `/proc/self/fd`, counted without building a list (10 000 connections
    /// are 10 000 entries); the directory's own descriptor is not counted.
    private static func openDescriptorCount() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != CChar(UInt8(ascii: ".")) { count += 1 }
        }
        return max(0, count - 1)
    }
    #endif
}
