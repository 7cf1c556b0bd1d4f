import Foundation
import Synchronization
import Testing
import QKEngine
import QKStore
import QKTestSupport

/// A `qkcat` child process with its output captured.
final class QKCatProcess: @unchecked Sendable {
    let process = Process()
    private let out = Pipe(), err = Pipe()

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        let executable = try #require(qkcatExecutable(), "build the qkcat executable first (make test does)")
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = out
        process.standardError = err
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits for the exit; the output is small (quiet ingests, labels), so the pipes never fill.
    func wait() -> RunResult {
        process.waitUntilExit()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return RunResult(code: process.terminationStatus, out: stdout, err: stderr)
    }
}

/// A capture that takes the engine a few seconds on one thread: long enough to hold the write lock meanwhile, even on
/// an idle machine (where half of it took a debug build about a second: too short for the tests below).
func slowCaptureSpec() -> SyntheticCaptureSpec {
    var spec = syntheticSpec(checkpoint: "step9", layers: [0, 1, 2, 3], prompts: 2000, seed: 8)
    spec.model.layerCount = 4
    spec.model.name = "planted/wide"
    spec.model.headCount = 8
    spec.model.kvHeadCount = 8
    spec.model.headDimension = 64
    return spec
}

/// Waits until some connection holds the write lock of `db` for 200 ms on end (true), or `process` ended first
/// (false). Opening a catalog takes the lock for a moment (recovering the write-ahead log): that does not count.
func waitForWriteLock(_ db: String, heldBy process: Process) throws -> Bool {
    var heldSince: Date?
    for _ in 0..<30_000 where process.isRunning {
        var held = false
        if FileManager.default.fileExists(atPath: db) {
            let probe = try Database(path: db, busyTimeoutMilliseconds: 0)
            do {
                try probe.execute("BEGIN IMMEDIATE")
                try probe.execute("ROLLBACK")
            } catch {
                held = true
            }
        }
        if !held { heldSince = nil } else if heldSince == nil { heldSince = Date() }
        if let heldSince, Date().timeIntervalSince(heldSince) >= 0.2 { return true }
        usleep(5000)
    }
    return false
}

/// A catalog holding one small capture, and a slow capture whose ingest holds the write lock for seconds.
struct BusyCatalog {
    let root: TemporaryDirectory
    let db: String
    let slow: URL
    /// Every row of the catalog before the slow ingest.
    let before: (content: String, integrity: String)

    init() throws {
        root = try TemporaryDirectory()
        let first = try writeCapture(syntheticSpec(prompts: 60), in: root, name: "first")
        slow = try writeCapture(slowCaptureSpec(), in: root, name: "slow")
        db = root.path("catalog.sqlite").path
        #expect(qkcat(["ingest", first.path, "--db", db, "-q"]).code == 0)
        before = try CatalogSnapshot.take(db)
    }

    /// Starts ingesting the slow capture on one thread; returns once it holds the write lock.
    func startSlowIngest() throws -> QKCatProcess {
        let ingest = try QKCatProcess(["ingest", slow.path, "--db", db, "--threads", "1", "-q"])
        #expect(try waitForWriteLock(db, heldBy: ingest.process), "the ingest never started writing")
        return ingest
    }
}

/// Several writers on one catalog at once: each succeeds or waits for the others; none loses or corrupts a
/// write; one that waits longer than it may is told whose lock it waited for.
@Suite("concurrent writers")
struct ConcurrentWritersTests {
    static func humanLabels(_ db: String) throws -> [Int: String] {
        let database = try Database(path: db, readOnly: true)
        let rows = try database.prepare("SELECT id, human_label FROM components WHERE human_label IS NOT NULL")
        var labels: [Int: String] = [:]
        while try rows.step() { labels[rows.int(at: 0)!] = rows.text(at: 1) }
        return labels
    }

    @Test("two ingests of different captures into one catalog at once both land")
    func twoIngests() throws {
        let root = try TemporaryDirectory()
        let first = try writeCapture(syntheticSpec(prompts: 400), in: root, name: "first")
        let second = try writeCapture(syntheticSpec(checkpoint: "step2", prompts: 400, seed: 9), in: root, name: "second")
        var alone: [Int] = []
        for (name, capture) in [("a", first), ("b", second)] {
            let db = root.path("\(name).sqlite").path
            #expect(qkcat(["ingest", capture.path, "--db", db, "--per-value", "-q"]).code == 0)
            alone.append(try jsonLines(qkcat(["export", "--db", db]).out).count)
        }

        let db = root.path("shared.sqlite").path
        let ingests = try [first, second].map { try QKCatProcess(["ingest", $0.path, "--db", db, "--per-value", "-q"]) }
        for result in ingests.map({ $0.wait() }) {
            #expect(result.code == 0, "\(result.err)")
            #expect(result.err.isEmpty)
        }
        let catalog = try Catalog.open(path: db, readOnly: true)
        #expect(try catalog.listCaptures().map(\.checkpoint).sorted() == ["step1", "step2"])
        #expect(try catalog.database.scalarText("PRAGMA integrity_check") == "ok")
        #expect(try jsonLines(qkcat(["export", "--db", db]).out).count == alone.reduce(0, +))
    }

    @Test("labels and searches in a loop while an ingest runs: searches answer, labels wait, none is lost")
    func labelAndSearchDuringAnIngest() throws {
        let catalog = try BusyCatalog()
        let db = catalog.db
        let ingest = try catalog.startSlowIngest()
        // Searches in a loop on another thread for as long as the ingest runs; labels in a loop here.
        let searches = Mutex<(count: Int, failures: [String])>((0, []))
        let searching = DispatchGroup()
        DispatchQueue.global().async(group: searching) {
            while ingest.process.isRunning {
                let search = qkcat(["search", "category", "--db", db, "--json", "--limit", "5"])
                let hits = (try? JSONSerialization.jsonObject(with: Data(search.out.utf8)) as? [Any])?.count
                searches.withLock {
                    $0.count += 1
                    if search.code != 0 || hits != 5 { $0.failures.append("exit \(search.code), \(hits ?? 0) hits: \(search.err)") }
                }
            }
        }
        var written: [Int: String] = [:]
        for round in 0..<8 {
            let component = 1 + round % 4
            let text = "loop \(round)"
            let label = try QKCatProcess(["label", String(component), text, "--db", db]).wait()
            #expect(label.code == 0, "\(label.err)")
            written[component] = text
        }
        searching.wait()
        let (searchCount, searchFailures) = searches.withLock { ($0.count, $0.failures) }
        #expect(searchFailures.isEmpty)
        let result = ingest.wait()
        #expect(result.code == 0, "\(result.err)")
        #expect(searchCount > 0)
        #expect(try Self.humanLabels(db) == written)
        let reader = try Catalog.open(path: db, readOnly: true)
        #expect(try reader.listCaptures().count == 2)
        #expect(try reader.database.scalarText("PRAGMA integrity_check") == "ok")
        for (component, text) in written {
            #expect(try reader.search(text, limit: 5).contains { $0.id == Int64(component) })
        }
    }

    @Test("two processes labelling at once: every label lands")
    func twoLabellers() throws {
        let root = try TemporaryDirectory()
        let capture = try writeCapture(syntheticSpec(prompts: 60), in: root, name: "capture")
        let db = root.path("catalog.sqlite").path
        #expect(qkcat(["ingest", capture.path, "--db", db, "-q"]).code == 0)
        let executable = try #require(qkcatExecutable())
        let count = 12
        #expect(try Catalog.open(path: db, readOnly: true).search("", limit: 2 * count).count == 2 * count)
        let loops = try ["A", "B"].enumerated().map { offset, name in
            let first = 1 + offset * count
            // Each loop is a shell running one qkcat process per label.
            let script = "for i in $(seq \(first) \(first + count - 1)); do "
                + "\"$0\" label \"$i\" \"\(name) $i\" --db \"$1\" >/dev/null || exit 1; done"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", script, executable.path, db]
            try process.run()
            return process
        }
        for loop in loops {
            loop.waitUntilExit()
            #expect(loop.terminationStatus == 0)
        }
        var expected: [Int: String] = [:]
        for i in 1...count { expected[i] = "A \(i)"; expected[count + i] = "B \(count + i)" }
        #expect(try Self.humanLabels(db) == expected)
        #expect(try Database(path: db, readOnly: true).scalarText("PRAGMA integrity_check") == "ok")
    }

    @Test("QKCAT_BUSY_TIMEOUT must be a number of seconds")
    func busyTimeoutIsChecked() throws {
        let root = try TemporaryDirectory()
        let db = root.path("catalog.sqlite").path
        _ = try Catalog.open(path: db)
        for text in ["soon", "-1", "1e9"] {
            let result = qkcat(["list", "models", "--db", db], environment: ["QKCAT_BUSY_TIMEOUT": text])
            #expect(result.code == 1)
            #expect(result.err == "Error: QKCAT_BUSY_TIMEOUT must be a number of seconds from 0 to 86400, got '\(text)'\n")
        }
        #expect(qkcat(["list", "models", "--db", db], environment: ["QKCAT_BUSY_TIMEOUT": "2.5"]).code == 0)
    }

    @Test("a writer kept waiting past its timeout is told which process holds the lock")
    func lockHolderNamed() throws {
        let catalog = try BusyCatalog()
        let db = catalog.db
        let ingest = try catalog.startSlowIngest()
        defer { if ingest.process.isRunning { kill(ingest.pid, SIGKILL) } }
        let label = try QKCatProcess(["label", "1", "impatient", "--db", db], environment: ["QKCAT_BUSY_TIMEOUT": "0.5"]).wait()
        let stillRunning = ingest.process.isRunning
        kill(ingest.pid, SIGKILL)
        _ = ingest.wait()

        #expect(stillRunning, "the ingest ended before the label gave up: make the slow capture slower")
        #expect(label.code == 1)
        #expect(label.err.hasPrefix("Error: \(db): the catalog's write lock is held by another writer (pid \(ingest.pid): "
            + "qkcat ingest \(catalog.slow.path) "), "\(label.err)")
        #expect(label.err.hasSuffix("and was not released within 0.5 s; run the command again when that one has finished\n"))
        let after = try CatalogSnapshot.take(db)
        #expect(after.integrity == "ok")
        #expect(after.content == catalog.before.content)
        #expect(qkcat(["label", "1", "patient", "--db", db]).code == 0)
    }
}
