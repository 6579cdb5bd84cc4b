// swift-tools-version: 6.1
// Microbenchmarks of the decision path (ordo-one/benchmark, with malloc counts):
// token bucket, keyed limiter, admission decision, round-robin pick, and the wire
// parsers. A package of its own so that building and testing Fluxgate does not
// build the benchmark tooling. Run: `cd Benchmarks && swift package benchmark`.
import PackageDescription

let package = Package(
    name: "FluxgateBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `fluxgate` is a symlink to the repository root, so the dependency has the
        // same identity whatever the checkout's folder is called.
        .package(path: "fluxgate"),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "DecisionPath",
            dependencies: [
                .product(name: "FluxgateCore", package: "fluxgate"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/DecisionPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
