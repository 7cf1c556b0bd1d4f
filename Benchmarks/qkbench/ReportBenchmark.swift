import Foundation
import QKCommands
import QKStore
import QKTestSupport

// `qkcat report` over a synthetic catalog of 3 checkpoints × 32 layers × 32 heads (d_head 64, rank 8, a pooled and
// three per-value decompositions per head, 5 examples per list): the whole command in-process, the largest page and
// the folder's size. The catalog is built once through the store's ingest and kept in `directory`.
//
// Each run writes a fresh folder with the file system settled: a previous run's site is moved aside and deleted
// after the last run, sites of an earlier invocation are deleted first and given time, and everything written is
// flushed before each run, so that deleting an earlier site is not charged to the report (why: Benchmarks/README.md,
// "Meeting the 10 s target"). `settle: false` deletes the previous site just before each run instead: what a re-run
// over a report written minutes before costs.
func reportBenchmark(directory: URL, repetitions: Int = 3, settle: Bool = true) throws -> [String: Any] {
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
    let trash = directory.appendingPathComponent("old-sites")
    if settle, FileManager.default.fileExists(atPath: out.path) || FileManager.default.fileExists(atPath: trash.path) {
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: trash)
        sync()
        Thread.sleep(forTimeInterval: 65)
    }
    var times: [Double] = [], cpuTimes: [Double] = [], userTimes: [Double] = [], systemTimes: [Double] = []
    for run in 0..<repetitions {
        if settle {
            try FileManager.default.createDirectory(at: trash, withIntermediateDirectories: true)
            if FileManager.default.fileExists(atPath: out.path) {
                try FileManager.default.moveItem(at: out, to: trash.appendingPathComponent("site-\(run)"))
            }
        } else {
            try? FileManager.default.removeItem(at: out)
        }
        sync()
        let stdout = StringOutput(), stderr = StringOutput()
        let start = now(), cpuStart = cpuSeconds()
        let code = QKCat.root.main(arguments: ["report", "--db", path, "--out", out.path], stdout: stdout, stderr: stderr)
        times.append(now() - start)
        let cpu = cpuSeconds()
        cpuTimes.append(cpu.total - cpuStart.total)
        userTimes.append(cpu.user - cpuStart.user)
        systemTimes.append(cpu.system - cpuStart.system)
        guard code == 0 else { throw ReportBenchmarkFailure.command("report exited \(code): \(stderr.text)") }
    }
    try? FileManager.default.removeItem(at: trash)
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
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    return [
        "step": "report", "checkpoints": shape.checkpoints.count, "layers": shape.layers, "heads": shape.heads,
        "components": shape.componentCount, "median_seconds": sorted[sorted.count / 2], "runs_seconds": times,
        "median_cpu_seconds": median(cpuTimes), "cpu_runs_seconds": cpuTimes, "median_user_seconds": median(userTimes),
        "median_system_seconds": median(systemTimes), "settled": settle, "load_average": loadAverage(),
        "pages": pages, "largest_page_bytes": largest, "site_bytes": bytes, "peak_rss": peakRSS(),
        "catalog_build_seconds": buildSeconds,
    ]
}

enum ReportBenchmarkFailure: Error { case command(String) }

/// User and system CPU time of this process, all threads: on a machine shared with other jobs it says what a run
/// cost when the wall clock says mostly how busy the machine was.
private func cpuSeconds() -> (user: Double, system: Double, total: Double) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    return (user, system, user + system)
}

/// The one-minute load average when the runs ended.
private func loadAverage() -> Double {
    var loads = [0.0, 0.0, 0.0]
    return getloadavg(&loads, 3) > 0 ? loads[0] : -1
}
