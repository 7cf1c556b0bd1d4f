// The engine's hot loops, in C so that each can be compiled for several instruction sets and the
// best one the CPU supports chosen at run time (no build flag ties the library to one CPU).
#ifndef CQKKERNELS_H
#define CQKKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction sets the kernels are compiled for.
typedef enum {
    QK_ISA_PORTABLE = 0,  ///< baseline x86-64 (SSE2) or whatever the target offers without extra flags
    QK_ISA_AVX2 = 1,      ///< AVX2 + FMA
    QK_ISA_AVX512 = 2,    ///< AVX-512 F/VL/DQ/BW
} qk_isa;

/// The best instruction set this CPU supports (and the build can produce).
qk_isa qk_detected_isa(void);
/// The instruction set used by default: the detected one, or a lower one named by the environment
/// variable QKCAT_KERNELS (portable, avx2, avx512), read once.
qk_isa qk_default_isa(void);
/// The instruction set a kernel called with `requested` runs: the default one when `requested` is
/// negative, else `requested` lowered to what the CPU supports.
qk_isa qk_resolve_isa(int requested);

// Every kernel takes the instruction set to use first (−1: the default); the results of the
// variants differ only by float rounding.

/// Columns per packed panel of `qk_scores`' vectors.
#define QK_PANEL_COLUMNS 16

/// `c[i * ldc + j] += Σ_r a[rows[r] * lda + i] · b[r * ldb + j]` for i < m, j < n, r < count
/// (`rows` NULL: row r of `a`). Products and sums of up to 64 terms in float, blocks added in double.
void qk_gemm_tn_f64acc(int isa, int m, int n, int count, const float *a, int lda, const int32_t *rows, const float *b,
                       int ldb, double *c, int ldc);

/// `out[r * ldo + j] = x[r * ldx + ·] · column j` for r < row_count and every column of `panels`,
/// where `panels` holds `panel_count` blocks of `depth × QK_PANEL_COLUMNS` floats (column j of the
/// packed vectors is entry j % 16 of each depth row of panel j / 16); `ldo ≥ 16 · panel_count`.
void qk_scores(int isa, int row_count, int depth, const float *x, int ldx, const float *panels, int panel_count, float *out,
               int ldo);

/// Running top-`capacity` selection over rows of scores, for `columns` components at once: a
/// min-heap per component (worst entry at the root; among equal scores the later row is worse).
typedef struct {
    int capacity;
    int columns;
    float *high_scores;      ///< columns × capacity
    int32_t *high_rows;      ///< columns × capacity
    int32_t *high_counts;    ///< columns
    float *high_threshold;   ///< columns: a score must exceed it to enter (−∞ while not full)
    float *low_scores;       ///< columns × capacity, negated scores
    int32_t *low_rows;
    int32_t *low_counts;
    float *low_threshold;    ///< columns: a score must be below it to enter (+∞ while not full)
} qk_top;

/// One block of `row_count` rows of scores (`scores[r * lds + j]`, row numbers `first_row + r`):
/// offers every score to the component's selections and adds it to the component's token sum
/// `token_sums[tokens[r] * ldt + j]` (double).
void qk_collect(int isa, int row_count, const float *scores, int lds, int32_t first_row, const int32_t *tokens,
                double *token_sums, int ldt, qk_top *top);

// The SVD's inner loops, on column-major double matrices whose columns are `stride` doubles apart.

/// `y ← (I − τ v vᵀ) y` for the `columns` columns `y` starting at `first` (`height` entries each).
void qk_reflect_columns(int isa, const double *v, double tau, double *first, long stride, int columns, int height);

/// `Y ← Y (I − τ v vᵀ)` for the `height × columns` block at `first`, whose row `i` is entry `i` of
/// each column (`v` has `columns` entries); `work` holds `height` doubles.
void qk_reflect_rows(int isa, const double *v, double tau, double *first, long stride, int columns, int height,
                     double *work);

/// Applies the plane rotations of columns `(k, k+1)` for `k = lo..<hi`, in that order, to the
/// `rows`-row columns of `base`: `(x, y) ← (c·x + s·y, c·y − s·x)`.
void qk_rotate_chain(int isa, double *base, int rows, long stride, int lo, int hi, const double *cosines,
                     const double *sines);

/// Element types `qk_decode_rows` converts.
typedef enum { QK_DECODE_BF16 = 0, QK_DECODE_F32 = 1 } qk_decode_type;

/// Converts `rows` rows of `width` little-endian elements, the rows `row_stride` bytes apart from
/// `source` (any alignment), into consecutive rows of `out`. Returns the first row holding a NaN or
/// an infinity, or −1.
int qk_decode_rows(int isa, qk_decode_type type, const void *source, long row_stride, float *out, int width, int rows);

#ifdef __cplusplus
}
#endif

#endif
