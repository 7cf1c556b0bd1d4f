/// A dense matrix of `Double`, stored row by row.
public struct Matrix: Sendable, Equatable {
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let columns: Int
    /// The entries, row-major: entry `(i, j)` is `elements[i * columns + j]`.
    public var elements: [Double]

    /// A `rows × columns` matrix with every entry equal to `value`.
    public init(rows: Int, columns: Int, repeating value: Double = 0) {
        precondition(rows >= 0 && columns >= 0, "Matrix dimensions must be non-negative")
        self.rows = rows
        self.columns = columns
        self.elements = Array(repeating: value, count: rows * columns)
    }

    /// A `rows × columns` matrix from row-major entries.
    public init(rows: Int, columns: Int, elements: [Double]) {
        precondition(rows >= 0 && columns >= 0, "Matrix dimensions must be non-negative")
        precondition(elements.count == rows * columns,
                     "Matrix of \(rows) × \(columns) needs \(rows * columns) elements, got \(elements.count)")
        self.rows = rows
        self.columns = columns
        self.elements = elements
    }

    /// A matrix whose columns are the given vectors, all of the same length.
    public init(columns vectors: [[Double]]) {
        let height = vectors.first?.count ?? 0
        precondition(vectors.allSatisfy { $0.count == height }, "Matrix columns must all have the same length")
        var elements = [Double](repeating: 0, count: height * vectors.count)
        for (j, vector) in vectors.enumerated() {
            for (i, value) in vector.enumerated() {
                elements[i * vectors.count + j] = value
            }
        }
        self.init(rows: height, columns: vectors.count, elements: elements)
    }

    /// The `n × n` identity.
    public static func identity(_ n: Int) -> Matrix {
        var result = Matrix(rows: n, columns: n)
        for i in 0..<n {
            result.elements[i * n + i] = 1
        }
        return result
    }

    /// Entry `(row, column)`.
    public subscript(row: Int, column: Int) -> Double {
        get {
            precondition(row >= 0 && row < rows && column >= 0 && column < columns, "Matrix index out of range")
            return elements[row * columns + column]
        }
        set {
            precondition(row >= 0 && row < rows && column >= 0 && column < columns, "Matrix index out of range")
            elements[row * columns + column] = newValue
        }
    }

    /// Column `j` as a vector.
    public func column(_ j: Int) -> [Double] {
        precondition(j >= 0 && j < columns, "Matrix column out of range")
        return (0..<rows).map { elements[$0 * columns + j] }
    }

    /// Row `i` as a vector.
    public func row(_ i: Int) -> [Double] {
        precondition(i >= 0 && i < rows, "Matrix row out of range")
        return Array(elements[(i * columns)..<((i + 1) * columns)])
    }

    /// The transpose.
    public func transposed() -> Matrix {
        var result = Matrix(rows: columns, columns: rows)
        let (m, n) = (rows, columns)
        elements.withUnsafeBufferPointer { source in
            result.elements.withUnsafeMutableBufferPointer { target in
                // Blocks keep both the reads and the writes within a few cache lines.
                let block = 32
                for i0 in stride(from: 0, to: m, by: block) {
                    for j0 in stride(from: 0, to: n, by: block) {
                        for i in i0..<min(i0 + block, m) {
                            for j in j0..<min(j0 + block, n) {
                                target[j * m + i] = source[i * n + j]
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// `sqrt(Σ aᵢⱼ²)`.
    public var frobeniusNorm: Double {
        elements.withUnsafeBufferPointer { VectorKernels.norm($0.baseAddress, $0.count) }
    }

    /// The matrix product `lhs · rhs`.
    public static func * (lhs: Matrix, rhs: Matrix) -> Matrix {
        precondition(lhs.columns == rhs.rows,
                     "Matrix product of \(lhs.rows) × \(lhs.columns) by \(rhs.rows) × \(rhs.columns)")
        let (m, inner, n) = (lhs.rows, lhs.columns, rhs.columns)
        var result = Matrix(rows: m, columns: n)
        guard m > 0, n > 0, inner > 0 else { return result }
        lhs.elements.withUnsafeBufferPointer { a in
            rhs.elements.withUnsafeBufferPointer { b in
                result.elements.withUnsafeMutableBufferPointer { c in
                    // Row i of C accumulates aᵢₖ · (row k of B): every inner loop runs over contiguous memory.
                    for i in 0..<m {
                        let cRow = c.baseAddress! + i * n
                        let aRow = a.baseAddress! + i * inner
                        for k in 0..<inner {
                            let factor = aRow[k]
                            if factor != 0 {
                                VectorKernels.axpy(factor, b.baseAddress! + k * n, cRow, n)
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// Entry-wise difference.
    public static func - (lhs: Matrix, rhs: Matrix) -> Matrix {
        precondition(lhs.rows == rhs.rows && lhs.columns == rhs.columns, "Matrix difference of different shapes")
        return Matrix(rows: lhs.rows, columns: lhs.columns, elements: zip(lhs.elements, rhs.elements).map { $0 - $1 })
    }

    /// Entry-wise sum.
    public static func + (lhs: Matrix, rhs: Matrix) -> Matrix {
        precondition(lhs.rows == rhs.rows && lhs.columns == rhs.columns, "Matrix sum of different shapes")
        return Matrix(rows: lhs.rows, columns: lhs.columns, elements: zip(lhs.elements, rhs.elements).map { $0 + $1 })
    }

    /// Every entry times `scalar`.
    public static func * (scalar: Double, matrix: Matrix) -> Matrix {
        Matrix(rows: matrix.rows, columns: matrix.columns, elements: matrix.elements.map { scalar * $0 })
    }
}
