#!/usr/bin/env bash
# A package that depends on qkcat *by version* builds its library products and calls the engine.
# SwiftPM refuses unsafe build flags in such a dependency (a path dependency would not show it), so
# this copies the working tree into a temporary git repository, tags it 1.0.0, and builds a tiny
# consumer with `.package(url: "file://…", from: "1.0.0")`. Run by `make test`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SWIFT=${SWIFT:-swift}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qkcat-versioned.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The tree as it is now (tracked and new files, not .build), as a tagged repository.
mkdir "$WORK/qkcat"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard -- Package.swift Sources \
    | xargs -0 -I{} cp --parents {} "$WORK/qkcat/")
(cd "$WORK/qkcat" && git init -q && git add -A \
    && git -c user.name=qkcat -c user.email=qkcat@localhost commit -qm "qkcat under test" && git tag 1.0.0)

mkdir -p "$WORK/consumer/Sources/Consumer"
cat > "$WORK/consumer/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Consumer",
    dependencies: [.package(url: "file://$WORK/qkcat", from: "1.0.0")],
    targets: [
        .executableTarget(name: "Consumer", dependencies: [
            .product(name: "QKEngine", package: "qkcat"),
            .product(name: "QKStore", package: "qkcat"),
        ]),
    ]
)
SWIFT
cat > "$WORK/consumer/Sources/Consumer/main.swift" <<'SWIFT'
import Foundation
import QKEngine
import QKStore

// A planted capture, decomposed and stored: the engine and the catalog as a dependency.
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("consumer-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: directory) }
let spec = SyntheticCaptureSpec(
    model: ModelInfo(name: "consumer", checkpoint: "main", layerCount: 1, headCount: 2, kvHeadCount: 1, headDimension: 16),
    layers: [0], promptCount: 400, keysPerPrompt: 6, unlabelledKeysPerPrompt: 0,
    features: [SyntheticFeature(name: "category", valueCount: 4, rank: 2)], noise: 0.02, dtype: .bf16, seed: 1)
try SyntheticCapture.write(spec, to: directory)
let reader = try CaptureReader.open(directory)
let results = try Decomposer(reader: reader, options: DecompositionOptions(perValue: true, topCount: 3)).runAll()
let ranks = results.flatMap(\.decompositions).filter { $0.value == nil }.map(\.rank)
_ = try Catalog.open(path: directory.appendingPathComponent("catalog.sqlite").path)
print("pooled ranks \(ranks); catalog opened")
SWIFT

cd "$WORK/consumer"
"$SWIFT" build 2>&1 | tail -n 20
OUTPUT=$("$SWIFT" run --skip-build Consumer)
echo "$OUTPUT"
grep -q "pooled ranks \[2, 2\]" <<<"$OUTPUT"
echo "versioned dependency: OK"
