import Foundation

/// Keeps the `capacity` largest (score, item) pairs seen, largest first, in O(n · log capacity).
struct TopSelector {
    let capacity: Int
    /// Sorted descending by score; ties keep the earlier item first.
    private(set) var entries: [(score: Double, item: Int)] = []

    init(capacity: Int) {
        self.capacity = capacity
        entries.reserveCapacity(capacity + 1)
    }

    @inline(__always)
    mutating func offer(_ score: Double, _ item: Int) {
        guard capacity > 0 else { return }
        if entries.count == capacity, score <= entries[capacity - 1].score { return }
        // Binary search for the first entry with a smaller score.
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].score >= score { low = mid + 1 } else { high = mid }
        }
        entries.insert((score, item), at: low)
        if entries.count > capacity { entries.removeLast() }
    }
}
