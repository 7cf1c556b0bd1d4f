/// The inner loops of the dense linear algebra, on raw contiguous vectors.
///
/// Plain scalar loops, unrolled by four with independent accumulators, which the optimizer vectorizes
/// for the baseline target; the SVD's heaviest loops are C kernels (CQKKernels) chosen for the CPU.
enum VectorKernels {
    /// `Σ x[i] · y[i]` over `count` entries.
    @inline(__always)
    static func dot(_ x: UnsafePointer<Double>?, _ y: UnsafePointer<Double>?, _ count: Int) -> Double {
        guard count > 0, let x, let y else { return 0 }
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= count {
            s0 += x[i] * y[i]
            s1 += x[i + 1] * y[i + 1]
            s2 += x[i + 2] * y[i + 2]
            s3 += x[i + 3] * y[i + 3]
            i += 4
        }
        while i < count {
            s0 += x[i] * y[i]
            i += 1
        }
        return (s0 + s1) + (s2 + s3)
    }

    /// The Euclidean norm of `count` entries, safe from overflow and underflow of the squares.
    static func norm(_ x: UnsafePointer<Double>?, _ count: Int) -> Double {
        guard count > 0, let x else { return 0 }
        let squares = dot(x, x, count)
        if squares.isFinite && squares > 1e-290 || squares == 0 && maxMagnitude(x, count) == 0 {
            return squares.squareRoot()
        }
        let scale = maxMagnitude(x, count)
        guard scale.isFinite else { return scale }
        var sum = 0.0
        for i in 0..<count {
            let scaled = x[i] / scale
            sum += scaled * scaled
        }
        return scale * sum.squareRoot()
    }

    /// `max |x[i]|` over `count` entries.
    static func maxMagnitude(_ x: UnsafePointer<Double>, _ count: Int) -> Double {
        var result = 0.0
        for i in 0..<count {
            result = max(result, abs(x[i]))
        }
        return result
    }

    /// `x[i] *= alpha` over `count` entries.
    @inline(__always)
    static func scale(_ x: UnsafeMutablePointer<Double>, _ count: Int, by alpha: Double) {
        for i in 0..<count {
            x[i] *= alpha
        }
    }

    /// `y[i] += alpha · x[i]` over `count` entries.
    @inline(__always)
    static func axpy(_ alpha: Double, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ count: Int) {
        for i in 0..<count {
            y[i] += alpha * x[i]
        }
    }

    /// The plane rotation `(x, y) ← (c·x + s·y, c·y − s·x)` over `count` entries.
    @inline(__always)
    static func rotate(_ x: UnsafeMutablePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ count: Int,
                       c: Double, s: Double) {
        for i in 0..<count {
            let xi = x[i]
            let yi = y[i]
            x[i] = c * xi + s * yi
            y[i] = c * yi - s * xi
        }
    }
}

/// A column-major scratch matrix that owns its storage; lives inside one decomposition call only.
final class ColumnMajorBuffer {
    let rows: Int
    let columns: Int
    /// Distance between the starts of two columns: `rows` rounded up to whole cache lines, plus one line
    /// when that would be a multiple of 512 bytes, so that walking along a row does not hit one cache set.
    let stride: Int
    let base: UnsafeMutablePointer<Double>

    /// A zero-filled `rows × columns` buffer.
    init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        var stride = (rows + 7) / 8 * 8
        if stride % 64 == 0 {
            stride += 8
        }
        self.stride = stride
        let count = max(stride * columns, 1)
        base = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Double>.stride, alignment: 64)
            .bindMemory(to: Double.self, capacity: count)
        base.initialize(repeating: 0, count: count)
    }

    /// The column-major copy of `matrix` (or of its transpose).
    convenience init(_ matrix: Matrix, transposed: Bool = false) {
        if transposed {
            // Row-major storage of A read row by row gives the columns of Aᵀ.
            self.init(rows: matrix.columns, columns: matrix.rows)
            let (m, n) = (matrix.rows, matrix.columns)
            matrix.elements.withUnsafeBufferPointer { source in
                for i in 0..<m {
                    column(i).update(from: source.baseAddress! + i * n, count: n)
                }
            }
        } else {
            self.init(rows: matrix.rows, columns: matrix.columns)
            let (m, n) = (matrix.rows, matrix.columns)
            matrix.elements.withUnsafeBufferPointer { source in
                for i in 0..<m {
                    for j in 0..<n {
                        base[j * stride + i] = source[i * n + j]
                    }
                }
            }
        }
    }

    /// Number of stored entries, padding included (the padding stays zero).
    var storedCount: Int {
        stride * columns
    }

    deinit {
        UnsafeMutableRawPointer(base).deallocate()
    }

    /// The first entry of column `j`.
    @inline(__always)
    func column(_ j: Int) -> UnsafeMutablePointer<Double> {
        base + j * stride
    }

    /// The row-major matrix made of the columns `order` (in that order), each multiplied by `signs`' entry.
    func matrix(columnOrder order: [Int], signs: [Double]? = nil) -> Matrix {
        var result = Matrix(rows: rows, columns: order.count)
        let width = order.count
        result.elements.withUnsafeMutableBufferPointer { target in
            for (j, source) in order.enumerated() {
                let column = column(source)
                let sign = signs?[source] ?? 1
                for i in 0..<rows {
                    target[i * width + j] = sign * column[i]
                }
            }
        }
        return result
    }
}
