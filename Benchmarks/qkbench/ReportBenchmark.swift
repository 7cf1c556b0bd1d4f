import Foundation
import QKCommands
import QKStore
import QKTestSupport

// `qkcat report` over a synthetic catalog of 3 checkpoints × 32 layers × 32 heads (d_head 64, rank 8, a pooled and
// three per-value decompositions per head, 5 examples per list): the whole command in-process, the largest page and
// the folder's size. The catalog is built once through the store's ingest and kept in `directory`.
func reportBenchmark(directory: URL, repetitions: Int = 3) throws -> [String: Any] {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let shape = SyntheticCatalog.Shape()
    let path = directory.appendingPathComponent("report-\(shape.checkpoints.count)x\(shape.layers)x\(shape.heads).sqlite").path
    var buildSeconds = 0.0
    if !FileManager.default.fileExists(atPath: path) {
        let start = now()
        _ = try SyntheticCatalog.populate(try Catalog.open(path: path), shape: shape)
        buildSeconds = now() - start
    }
    let out = directory.appendingPathComponent("site")
    var times: [Double] = [], cpuTimes: [Double] = []
    for _ in 0..<repetitions {
        try? FileManager.default.removeItem(at: out)
        let stdout = StringOutput(), stderr = StringOutput()
        let start = now(), cpuStart = cpuSeconds()
        let code = QKCat.root.main(arguments: ["report", "--db", path, "--out", out.path], stdout: stdout, stderr: stderr)
        times.append(now() - start)
        cpuTimes.append(cpuSeconds() - cpuStart)
        guard code == 0 else { throw ReportBenchmarkFailure.command("report exited \(code): \(stderr.text)") }
    }
    var pages = 0, largest = 0, bytes = 0
    for case let file as String in FileManager.default.enumerator(atPath: out.path) ?? FileManager.DirectoryEnumerator() {
        let size = (try? FileManager.default.attributesOfItem(atPath: out.appendingPathComponent(file).path)[.size] as? Int) ?? 0
        bytes += size ?? 0
        if file.hasSuffix(".html") {
            pages += 1
            largest = max(largest, size ?? 0)
        }
    }
    let sorted = times.sorted()
    return [
        "step": "report", "checkpoints": shape.checkpoints.count, "layers": shape.layers, "heads": shape.heads,
        "components": shape.componentCount, "median_seconds": sorted[sorted.count / 2], "runs_seconds": times,
        "median_cpu_seconds": cpuTimes.sorted()[cpuTimes.count / 2], "load_average": loadAverage(),
        "pages": pages, "largest_page_bytes": largest, "site_bytes": bytes, "peak_rss": peakRSS(),
        "catalog_build_seconds": buildSeconds,
    ]
}

enum ReportBenchmarkFailure: Error { case command(String) }

/// User and system CPU time of this process, all threads: on a machine shared with other jobs it says what a run
/// cost when the wall clock says mostly how busy the machine was.
private func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// The one-minute load average when the runs ended.
private func loadAverage() -> Double {
    var loads = [0.0, 0.0, 0.0]
    return getloadavg(&loads, 3) > 0 ? loads[0] : -1
}
