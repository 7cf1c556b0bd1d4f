import Foundation

/// Each worker's best scores and count, or its error.
package final class PartialScans<Failure: Error>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<(best: TopScores, count: Int), Failure>?]

    package init(count: Int) { slots = Array(repeating: nil, count: count) }

    package func set(_ index: Int, _ result: Result<(best: TopScores, count: Int), Failure>) {
        lock.lock()
        defer { lock.unlock() }
        slots[index] = result
    }

    /// Every worker's result in order; the first failure is thrown; a worker that reported nothing is a programmer
    /// error.
    package func results() throws(Failure) -> [(best: TopScores, count: Int)] {
        lock.lock()
        defer { lock.unlock() }
        var values: [(best: TopScores, count: Int)] = []
        for slot in slots {
            switch slot {
            case .success(let value)?: values.append(value)
            case .failure(let error)?: throw error
            case nil: preconditionFailure("a similarity scan worker produced no result")
            }
        }
        return values
    }
}

/// The best `capacity` similarity scores seen so far (ties: lower id first): the top-k of nearest-component searches.
package struct TopScores {
    package struct Entry {
        package var score: Double
        package var id: Int64
        package var queryCosine: Double
        package var keyCosine: Double

        package func beats(_ other: Entry) -> Bool { score > other.score || (score == other.score && id < other.id) }
    }

    package let capacity: Int
    /// Kept sorted, best first; capacity is small, so insertion is cheap and rare.
    private(set) var entries: [Entry] = []

    package init(capacity: Int) { self.capacity = capacity }

    package mutating func offer(score: Double, id: Int64, queryCosine: Double, keyCosine: Double) {
        let entry = Entry(score: score, id: id, queryCosine: queryCosine, keyCosine: keyCosine)
        if entries.count == capacity {
            guard entry.beats(entries[capacity - 1]) else { return }
            entries.removeLast()
        }
        var position = entries.count
        while position > 0 && entry.beats(entries[position - 1]) { position -= 1 }
        entries.insert(entry, at: position)
    }

    package func sorted() -> [Entry] { entries }
}

