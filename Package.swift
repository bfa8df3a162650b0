// swift-tools-version:6.1
import PackageDescription

// Hot loops need the target CPU set: without it SIMD products become libm calls. Haswell
// (AVX2, FMA, F16C) rather than "native": the library runs on any x86-64 CPU of the last decade
// whatever machine built it, and valgrind (which has no AVX-512) can run it.
let fastMath: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"])]

let package = Package(
    name: "Kerf",
    products: [
        .library(name: "Kerf", type: .dynamic, targets: ["KerfC"]),
        .executable(name: "kerf", targets: ["kerf"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // MARK: - System libraries and C shims
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .target(name: "KerfCShims", path: "Sources/KerfCShims"),
        // AVX2 inner loops of the int8 GEMM (intrinsics; each function is compiled for AVX2 and
        // called only after a CPU check).
        .target(name: "KerfCKernels", path: "Sources/KerfCKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // MARK: - Core layers (each depends only downward)
        .target(
            name: "OnnxProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Sources/OnnxProto"),
        .target(
            name: "KerfCore",
            dependencies: ["OnnxProto", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // Graph structure: traversal, pattern matching, editing, portable rewrites, name
        // allocation, shape and dtype inference. Knows ONNX semantics, not how to run them.
        .target(name: "KerfGraph", dependencies: ["KerfCore"]),
        .target(name: "KerfKernels", dependencies: ["CDNNL", "KerfCKernels"], swiftSettings: fastMath),
        .target(name: "KerfRuntime", dependencies: ["KerfCore", "KerfGraph", "KerfKernels"], swiftSettings: fastMath),
        .target(name: "KerfCompress", dependencies: ["KerfCore", "KerfGraph", "KerfRuntime"]),
        // Training: reverse-mode autodiff as a graph transform, losses, optimizers, schedules.
        .target(name: "KerfTrain", dependencies: ["KerfCore", "KerfGraph", "KerfKernels", "KerfRuntime"], swiftSettings: fastMath),

        // MARK: - Products
        .target(
            name: "KerfC",
            dependencies: ["KerfCore", "KerfKernels", "KerfRuntime", "KerfCompress", "KerfTrain", "KerfCShims"],
            exclude: ["exports.map"],
            linkerSettings: [
                .unsafeFlags([
                    "-Xlinker", "--version-script=Sources/KerfC/exports.map",
                    "-Xlinker", "-zdefs",
                ])
            ]),
        .executableTarget(
            name: "kerf",
            dependencies: [
                "KerfCore", "KerfGraph", "KerfKernels", "KerfRuntime", "KerfCompress", "KerfTrain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // MARK: - Tests
        // assertClose and seeded test data, shared by the test targets (imports XCTest).
        .target(name: "KerfTestSupport", dependencies: ["KerfCore"], path: "Tests/KerfTestSupport"),
        .testTarget(name: "KerfCoreTests", dependencies: ["KerfCore", "KerfTestSupport"]),
        .testTarget(name: "KerfGraphTests", dependencies: ["KerfGraph", "KerfCore", "KerfTestSupport"]),
        .testTarget(name: "KerfRuntimeTests", dependencies: ["KerfRuntime", "KerfGraph", "KerfKernels", "KerfTestSupport"]),
        .testTarget(name: "KerfCompressTests", dependencies: ["KerfCompress", "KerfGraph", "KerfRuntime", "KerfCore", "KerfTestSupport"]),
        .testTarget(name: "KerfTrainTests", dependencies: ["KerfTrain", "KerfCompress", "KerfGraph", "KerfRuntime", "KerfCore", "KerfTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
