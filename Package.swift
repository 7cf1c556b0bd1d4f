// swift-tools-version:6.0
import PackageDescription

// Hot loops want AVX2/FMA/F16C (Haswell and later); every machine of this project's kind has them. The flag is only
// applied where the build host is x86_64 (host and target are the same machine here).
// Dynamic exclusivity checks cost ~11% of the engine's time in its kernels' buffer classes, whose
// access is already confined to one worker each; they stay on everywhere else.
#if arch(x86_64)
let fastMath: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell", "-enforce-exclusivity=unchecked"])]
#else
let fastMath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
#endif

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
        .target(name: "QKEngine", swiftSettings: fastMath),
        .target(name: "QKStore", dependencies: ["CSQLite", "QKEngine"]),
        .target(name: "QKCommands", dependencies: ["QKEngine", "QKStore"]),
        .executableTarget(name: "qkcat", dependencies: ["QKCommands"]),
        .executableTarget(
            name: "qkbench",
            dependencies: ["QKEngine", "QKStore", "QKCommands", "QKTestSupport"],
            path: "Benchmarks/qkbench",
            swiftSettings: fastMath
        ),
        .target(name: "QKTestSupport", dependencies: ["QKEngine", "QKStore"]),
        .testTarget(name: "QKEngineTests", dependencies: ["QKEngine", "QKTestSupport"]),
        .testTarget(name: "QKStoreTests", dependencies: ["QKStore", "QKTestSupport"]),
        .testTarget(name: "QKCommandsTests", dependencies: ["QKCommands", "QKTestSupport"]),
    ]
)
