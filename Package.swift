// swift-tools-version:6.0
import PackageDescription

// No unsafe build flags anywhere: a package that depends on qkcat by version must be able to build
// it. The hot loops live in CQKKernels, compiled for AVX-512, AVX2 and the baseline target at once
// and chosen at run time from the CPU's features.
let package = Package(
    name: "qkcat",
    products: [
        .library(name: "QKEngine", targets: ["QKEngine"]),
        .library(name: "QKStore", targets: ["QKStore"]),
        .executable(name: "qkcat", targets: ["qkcat"]),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(name: "CQKKernels"),
        .target(name: "QKEngine", dependencies: ["CQKKernels"]),
        .target(name: "QKStore", dependencies: ["CSQLite", "QKEngine"]),
        .target(name: "QKCommands", dependencies: ["QKEngine", "QKStore"]),
        .executableTarget(name: "qkcat", dependencies: ["QKCommands"]),
        .executableTarget(
            name: "qkbench",
            dependencies: ["QKEngine", "QKStore", "QKCommands", "QKTestSupport"],
            path: "Benchmarks/qkbench"
        ),
        .target(name: "QKTestSupport", dependencies: ["QKEngine", "QKStore"]),
        .testTarget(name: "QKEngineTests", dependencies: ["QKEngine", "QKTestSupport"]),
        .testTarget(name: "QKStoreTests", dependencies: ["QKStore", "QKTestSupport"]),
        .testTarget(name: "QKCommandsTests", dependencies: ["QKCommands", "QKTestSupport"]),
    ]
)
