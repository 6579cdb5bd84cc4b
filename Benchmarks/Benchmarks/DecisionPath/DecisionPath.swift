import Benchmark
import FluxgateCore

/// The per-request decisions, timed and with allocations counted. Every benchmark
/// does 1 000 operations per iteration (`scalingFactor: .kilo`), so the figures read
/// per 1 000 operations; docs/PERFORMANCE.md lists them per operation.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    Benchmark("TokenBucket.take") { benchmark in
        var bucket = TokenBucket(rate: 1_000_000_000, burst: 1_000, now: MonotonicTime(nanoseconds: 0))
        var clock: Int64 = 0
        for _ in benchmark.scaledIterations {
            clock += 1_000
            blackHole(bucket.take(now: MonotonicTime(nanoseconds: clock)))
        }
    }

    // 10 000 clients taking turns through a table bounded at 100 000: hits, no evictions.
    let clients = (0..<10_000).map { "10.0.\($0 / 256).\($0 % 256)" }
    Benchmark("KeyedLimiter.take (10k clients)") { benchmark in
        var limiter = KeyedLimiter<String>(rate: 1_000_000, burst: 1_000, capacity: 100_000)
        var clock: Int64 = 0
        var next = 0
        for _ in benchmark.scaledIterations {
            clock += 1_000
            next = next == clients.count - 1 ? 0 : next + 1
            blackHole(limiter.take(clients[next], now: MonotonicTime(nanoseconds: clock)))
        }
    }

    // A table at its bound with every key new: each take evicts the least recently used.
    Benchmark("KeyedLimiter.take (new key, evicting)") { benchmark in
        var limiter = KeyedLimiter<Int>(rate: 10, burst: 10, capacity: 10_000)
        var clock: Int64 = 0
        var key = 0
        for _ in benchmark.scaledIterations {
            clock += 1_000
            key += 1
            blackHole(limiter.take(key, now: MonotonicTime(nanoseconds: clock)))
        }
    }

    // The utilization rule for a request that finds a free slot, then its release.
    Benchmark("AdmissionController.arrive+release") { benchmark in
        var controller = AdmissionController(capacity: 15_000, settings: .init())
        var clock: Int64 = 0
        var id = 0
        for _ in benchmark.scaledIterations {
            clock += 1_000
            id += 1
            blackHole(controller.arrive(id: id, priority: .normal, now: MonotonicTime(nanoseconds: clock)))
            blackHole(controller.release(serviceTime: .microseconds(50)))
        }
    }

    // Every slot busy and the queue full: the shed decision.
    Benchmark("AdmissionController.arrive (shed)") { benchmark in
        var controller = AdmissionController(capacity: 3, settings: .init(targetUtilization: 0.67))
        for id in 0..<3 { _ = controller.arrive(id: id, priority: .critical, now: MonotonicTime(nanoseconds: 0)) }
        var id = 3
        for _ in benchmark.scaledIterations {
            id += 1
            blackHole(controller.arrive(id: id, priority: .normal, now: MonotonicTime(nanoseconds: 0)))
        }
    }

    // The admission preview of a request waiting for `100 Continue`, with 4 000 requests
    // queued: it decides on a copy of the checks and must copy nothing large (until
    // 2026-12-05 its copy's append copied the whole queue, a malloc and ~0.1 MB each).
    Benchmark("AdmissionChecks.preview (4 000 queued)") { benchmark in
        var config = GatewayConfig()
        config.rateLimit.global.enabled = false
        var checks = AdmissionChecks(config: config, capacity: 15_000, now: MonotonicTime(nanoseconds: 0))
        for _ in 0..<(checks.controller.slots + 4_000) {
            _ = checks.arrive(clientKey: "", priority: .normal, now: MonotonicTime(nanoseconds: 0), jitter: 0)
        }
        for _ in benchmark.scaledIterations {
            blackHole(checks.preview(clientKey: "", priority: .normal, now: MonotonicTime(nanoseconds: 0), jitter: 0))
        }
    }

    Benchmark("RoundRobin.pick (weights 5,1,1)") { benchmark in
        let balancer = RoundRobin(weights: [5, 1, 1])
        var ticket = 0
        for _ in benchmark.scaledIterations {
            ticket &+= 1
            blackHole(balancer.pick(ticket))
        }
    }

    let head = Array(
        ("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 29 Nov 2026 18:00:00 GMT\r\n"
            + "Content-Type: application/json\r\nContent-Length: 37\r\nConnection: keep-alive\r\n\r\n").utf8)
    Benchmark("ResponseHeadParser.parse (6 fields)") { benchmark in
        head.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations {
                blackHole(ResponseHeadParser.parse(bytes))
            }
        }
    }

    let chunked = Array("1000\r\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 4096) + Array("\r\n0\r\n\r\n".utf8)
    Benchmark("BodyFramer.consume (4 KiB chunk)") { benchmark in
        chunked.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations {
                var framer = BodyFramer(.chunked)
                blackHole(try? framer.consume(bytes) { blackHole($0) })
            }
        }
    }
}
