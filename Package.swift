// swift-tools-version: 6.1
import PackageDescription

/// Release builds of the data path drop the dynamic exclusivity checks (static ones
/// remain): they cost about 3 % of the gateway's CPU in profiles of the proxy path
/// (docs/PERFORMANCE.md). Debug builds and `swift test` keep them.
let dataPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
    name: "Fluxgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fluxgate", targets: ["fluxgate"]),
        .library(name: "FluxgateCore", targets: ["FluxgateCore"]),
        .library(name: "FluxgateNIO", targets: ["FluxgateNIO"]),
        .library(name: "FluxorDemo", targets: ["FluxorDemo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
    ],
    targets: [
        // Decisions: config model and validation, balancing, header policy, timeout
        // state machines. No NIO import, no clock reads.
        .target(
            name: "FluxgateCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: dataPathSettings
        ),
        // Server-side NIO pieces the gateway and the demo upstream both use (a lingering
        // close, pausing accepts when out of descriptors), so that the demo does not
        // depend on the gateway's I/O target for them.
        .target(
            name: "FluxgateNIOSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: dataPathSettings
        ),
        // I/O: the proxy data path, upstream pools, listeners.
        // epoll and pipe2 for the parked connections' watcher (Glibc's module lacks them).
        .target(name: "CFluxgateLinux"),
        .target(
            name: "FluxgateNIO",
            dependencies: [
                "FluxgateCore",
                "FluxgateNIOSupport",
                "CFluxgateLinux",
                "FluxgateRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                // A client certificate's subject and names for `X-Forwarded-Client-Cert`.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: dataPathSettings
        ),
        // A small RESP2 Redis client for cluster mode (no Swift Redis client is in the
        // package set; RedisClient.swift says more).
        .target(
            name: "FluxgateRedis",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The built-in demo upstream (the Fluxor API).
        .target(
            name: "FluxorDemo",
            dependencies: [
                "FluxgateCore",
                "FluxgateNIOSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Assembly: the gateway plus, for the embedded default, the demo upstreams.
        .target(
            name: "FluxgateApp",
            dependencies: [
                "FluxgateCore",
                "FluxgateNIO",
                "FluxorDemo",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "fluxgate",
            dependencies: [
                "FluxgateCore",
                "FluxgateNIO",
                "FluxorDemo",
                "FluxgateApp",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // libFuzzer harness for the parsers written here (Fuzz/run.sh builds it with
        // -sanitize=fuzzer); built normally it replays inputs, e.g. Fuzz/corpus.
        .executableTarget(
            name: "fluxgate-fuzz",
            dependencies: [
                "FluxgateCore",
                "FluxgateTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/FluxgateFuzz"
        ),
        // A measuring tool (bench/relay-floor.sh): the cheapest keep-alive relay NIO
        // allows, to tell NIO's own cost per request from the gateway's.
        .executableTarget(
            name: "fluxgate-relay-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/RelayFloor"
        ),
        // Real-client helpers shared by the test targets.
        .target(
            name: "FluxgateTestSupport",
            dependencies: [
                "FluxgateCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Tests/Support"
        ),
        .testTarget(name: "FluxgateCoreTests", dependencies: ["FluxgateCore", .product(name: "Yams", package: "Yams")]),
        .testTarget(
            name: "FluxgateRedisTests",
            dependencies: [
                "FluxgateRedis", "FluxgateTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FluxgateNIOTests",
            dependencies: [
                "FluxgateNIO", "FluxgateNIOSupport", "FluxgateCore", "FluxorDemo", "FluxgateTestSupport", "FluxgateRedis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // Test certificates are made in the test (no openssl on a fresh machine).
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "FluxgateAppTests",
            dependencies: [
                "FluxgateApp", "FluxgateCore", "FluxgateTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FluxorDemoTests",
            dependencies: [
                "FluxorDemo", "FluxgateCore", "FluxgateTestSupport",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ]
)
