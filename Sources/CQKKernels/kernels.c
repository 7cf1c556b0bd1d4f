// Each kernel is written once, as an always-inline generic body, and instantiated three times:
// for AVX-512, for AVX2 + FMA (per-function target attributes) and for the baseline target. The
// instance is chosen at run time from the CPU's features, so the library needs no build flag.
#include "CQKKernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QK_INLINE static inline __attribute__((always_inline))
#define QK_MR 12                 // rows of a register tile (and of a packed panel of the left factor)
#define QK_NR QK_PANEL_COLUMNS   // columns of a register tile: one AVX-512 vector, two AVX2 vectors
#define QK_KC 64                 // depth summed in float before a tile is added in double

typedef float qk_v16 __attribute__((vector_size(64)));
typedef double qk_v8d __attribute__((vector_size(64)));

// Unaligned vector moves; macros, since a vector passed to a function changes the ABI without AVX-512.
#define LOAD16(v, p) memcpy(&(v), (p), sizeof(qk_v16))
#define STORE16(p, v) memcpy((p), &(v), sizeof(qk_v16))
#define LOAD8D(v, p) memcpy(&(v), (p), sizeof(qk_v8d))
#define STORE8D(p, v) memcpy((p), &(v), sizeof(qk_v8d))

/// `tile[i][j] = Σ_k ap[k][i] · bp[k][j]` for the 12 × 16 tile, `pass` rows at a time (as many as
/// there are vector registers for accumulators: 12 with AVX-512, 6 with AVX2, 2 with SSE2).
/// `bytes` (rounded up to whole cache lines, as aligned_alloc wants) aligned to 64; aborts when memory is exhausted.
static void *allocate(size_t bytes) {
    void *p = aligned_alloc(64, bytes ? (bytes + 63) / 64 * 64 : 64);
    if (!p) abort();
    return p;
}

QK_INLINE void microkernel(int depth, const float *restrict ap, const float *restrict bp, float *restrict tile,
                           const int pass) {
    for (int g = 0; g < QK_MR; g += pass) {
        qk_v16 acc[QK_MR];
        for (int i = 0; i < pass; i++) acc[i] = (qk_v16){0};
        for (int k = 0; k < depth; k++) {
            qk_v16 b;
            LOAD16(b, bp + QK_NR * k);
            const float *a = ap + QK_MR * k + g;
            for (int i = 0; i < pass; i++) acc[i] += b * a[i];
        }
        for (int i = 0; i < pass; i++) STORE16(tile + QK_NR * (g + i), acc[i]);
    }
}

/// Scatters one row of `count` floats over panels of `width` (`panel_stride` floats apart), zero-padded.
QK_INLINE void pack_row(const float *restrict source, int count, float *restrict target, const int width,
                        size_t panel_stride) {
    int c = 0;
    for (; c + width <= count; c += width, target += panel_stride) memcpy(target, source + c, sizeof(float) * width);
    if (c < count) {
        memcpy(target, source + c, sizeof(float) * (count - c));
        memset(target + (count - c), 0, sizeof(float) * (width - (count - c)));
    }
}

QK_INLINE void gemm_tn(int m, int n, int count, const float *a, int lda, const int32_t *rows, const float *b,
                       int ldb, double *c, int ldc, const int pass) {
    if (m <= 0 || n <= 0 || count <= 0) return;
    const int mpanels = (m + QK_MR - 1) / QK_MR, npanels = (n + QK_NR - 1) / QK_NR;
    float *apack = allocate(sizeof(float) * (size_t)mpanels * QK_MR * QK_KC);
    float *bpack = allocate(sizeof(float) * (size_t)npanels * QK_NR * QK_KC);
    float tile[QK_MR * QK_NR] __attribute__((aligned(64)));
    for (int r0 = 0; r0 < count; r0 += QK_KC) {
        const int depth = count - r0 < QK_KC ? count - r0 : QK_KC;
        for (int k = 0; k < depth; k++) {
            pack_row(a + (size_t)(rows ? rows[r0 + k] : r0 + k) * lda, m, apack + (size_t)k * QK_MR, QK_MR,
                     (size_t)QK_KC * QK_MR);
            pack_row(b + (size_t)(r0 + k) * ldb, n, bpack + (size_t)k * QK_NR, QK_NR, (size_t)QK_KC * QK_NR);
        }
        for (int p = 0; p < mpanels; p++) {
            for (int q = 0; q < npanels; q++) {
                microkernel(depth, apack + (size_t)p * QK_KC * QK_MR, bpack + (size_t)q * QK_KC * QK_NR, tile, pass);
                const int i_end = m - p * QK_MR < QK_MR ? m - p * QK_MR : QK_MR;
                const int j_end = n - q * QK_NR < QK_NR ? n - q * QK_NR : QK_NR;
                for (int i = 0; i < i_end; i++) {
                    double *target = c + (size_t)(p * QK_MR + i) * ldc + q * QK_NR;
                    for (int j = 0; j < j_end; j++) target[j] += (double)tile[i * QK_NR + j];
                }
            }
        }
    }
    free(apack);
    free(bpack);
}

QK_INLINE void scores(int row_count, int depth, const float *x, int ldx, const float *panels, int panel_count,
                      float *out, int ldo, const int pass) {
    if (row_count <= 0 || panel_count <= 0) return;
    float *apack = allocate(sizeof(float) * (size_t)QK_MR * (size_t)depth);
    float tile[QK_MR * QK_NR] __attribute__((aligned(64)));
    for (int r0 = 0; r0 < row_count; r0 += QK_MR) {
        const int rows = row_count - r0 < QK_MR ? row_count - r0 : QK_MR;
        for (int i = 0; i < QK_MR; i++) {
            const float *source = x + (size_t)(r0 + i) * ldx;
            for (int k = 0; k < depth; k++) apack[k * QK_MR + i] = i < rows ? source[k] : 0.0f;
        }
        for (int q = 0; q < panel_count; q++) {
            microkernel(depth, apack, panels + (size_t)q * depth * QK_NR, tile, pass);
            for (int i = 0; i < rows; i++) memcpy(out + (size_t)(r0 + i) * ldo + q * QK_NR, tile + i * QK_NR, sizeof(float) * QK_NR);
        }
    }
    free(apack);
}

// Min-heaps of (score, row): the root is the worst entry, and of equal scores the later row is worse.
QK_INLINE int worse(float s1, int32_t r1, float s2, int32_t r2) { return s1 < s2 || (s1 == s2 && r1 > r2); }

static void heap_offer(float *scores, int32_t *rows, int32_t *count, int capacity, float score, int32_t row,
                       float *threshold) {
    int n = *count;
    if (n < capacity) {
        int i = n++;
        while (i > 0) {
            const int parent = (i - 1) / 2;
            if (!worse(score, row, scores[parent], rows[parent])) break;
            scores[i] = scores[parent];
            rows[i] = rows[parent];
            i = parent;
        }
        scores[i] = score;
        rows[i] = row;
        *count = n;
    } else {
        int i = 0;
        for (;;) {
            int child = 2 * i + 1;
            if (child >= n) break;
            if (child + 1 < n && worse(scores[child + 1], rows[child + 1], scores[child], rows[child])) child++;
            if (!worse(scores[child], rows[child], score, row)) break;
            scores[i] = scores[child];
            rows[i] = rows[child];
            i = child;
        }
        scores[i] = score;
        rows[i] = row;
    }
    if (n == capacity) *threshold = scores[0];
}

QK_INLINE void collect(int row_count, const float *scores, int lds, int32_t first_row, const int32_t *tokens,
                       double *token_sums, int ldt, qk_top *top) {
    const int m = top->columns, capacity = top->capacity;
    float *restrict high = top->high_threshold, *restrict low = top->low_threshold;
    for (int r = 0; r < row_count; r++) {
        const float *restrict s = scores + (size_t)r * lds;
        double *restrict sums = token_sums + (size_t)tokens[r] * ldt;
        for (int j = 0; j < m; j++) sums[j] += (double)s[j];
        if (capacity == 0) continue;
        int hit = 0;
        for (int j = 0; j < m; j++) hit |= (s[j] > high[j]) | (s[j] < low[j]);
        if (!hit) continue;
        for (int j = 0; j < m; j++) {
            if (s[j] > high[j]) {
                heap_offer(top->high_scores + (size_t)j * capacity, top->high_rows + (size_t)j * capacity,
                           top->high_counts + j, capacity, s[j], first_row + r, high + j);
            }
            if (s[j] < low[j]) {
                float negated_threshold = -low[j];
                heap_offer(top->low_scores + (size_t)j * capacity, top->low_rows + (size_t)j * capacity,
                           top->low_counts + j, capacity, -s[j], first_row + r, &negated_threshold);
                low[j] = -negated_threshold;
            }
        }
    }
}

QK_INLINE int decode_rows(qk_decode_type type, const void *source, long row_stride, float *out, int width, int rows) {
    for (int r = 0; r < rows; r++) {
        const unsigned char *row = (const unsigned char *)source + (size_t)r * row_stride;
        float *target = out + (size_t)r * width;
        uint32_t largest = 0;
        if (type == QK_DECODE_BF16) {
            for (int i = 0; i < width; i++) {
                uint16_t half;
                memcpy(&half, row + 2 * (size_t)i, sizeof half);
                const uint32_t bits = (uint32_t)half << 16;
                memcpy(target + i, &bits, sizeof bits);
                const uint32_t magnitude = bits & 0x7FFFFFFFu;
                largest = magnitude > largest ? magnitude : largest;
            }
        } else {
            for (int i = 0; i < width; i++) {
                uint32_t bits;
                memcpy(&bits, row + 4 * (size_t)i, sizeof bits);
                memcpy(target + i, &bits, sizeof bits);
                const uint32_t magnitude = bits & 0x7FFFFFFFu;
                largest = magnitude > largest ? magnitude : largest;
            }
        }
        // An exponent of all ones is an infinity or a NaN.
        if (largest >= 0x7F800000u) return r;
    }
    return -1;
}

QK_INLINE void reflect_columns(const double *restrict v, double tau, double *first, long stride, int columns,
                               int height) {
    for (int j = 0; j < columns; j++) {
        double *restrict y = first + (size_t)j * stride;
        double w0 = 0, w1 = 0, w2 = 0, w3 = 0;
        int i = 0;
        for (; i + 4 <= height; i += 4) {
            w0 += v[i] * y[i];
            w1 += v[i + 1] * y[i + 1];
            w2 += v[i + 2] * y[i + 2];
            w3 += v[i + 3] * y[i + 3];
        }
        for (; i < height; i++) w0 += v[i] * y[i];
        const double w = (w0 + w1) + (w2 + w3);
        if (w == 0) continue;
        const double factor = -tau * w;
        for (i = 0; i < height; i++) y[i] += factor * v[i];
    }
}

QK_INLINE void reflect_rows(const double *restrict v, double tau, double *first, long stride, int columns, int height,
                            double *restrict work) {
    memset(work, 0, sizeof(double) * (size_t)height);
    for (int t = 0; t < columns; t++) {
        const double *restrict y = first + (size_t)t * stride;
        const double factor = v[t];
        for (int i = 0; i < height; i++) work[i] += factor * y[i];
    }
    for (int t = 0; t < columns; t++) {
        double *restrict y = first + (size_t)t * stride;
        const double factor = -tau * v[t];
        for (int i = 0; i < height; i++) y[i] += factor * work[i];
    }
}

QK_INLINE void rotate_chain(double *base, int rows, long stride, int lo, int hi, const double *cosines,
                            const double *sines) {
    int row = 0;
    // Strips of eight rows carry the running column in registers: each column is read and written
    // once per chain instead of twice per rotation.
    for (; row + 8 <= rows; row += 8) {
        double *carried = base + (size_t)lo * stride + row;
        qk_v8d x, y, rotated;
        LOAD8D(x, carried);
        for (int k = lo; k < hi; k++) {
            double *next = carried + stride;
            const double c = cosines[k], s = sines[k];
            LOAD8D(y, next);
            rotated = c * x + s * y;
            STORE8D(carried, rotated);
            x = c * y - s * x;
            carried = next;
        }
        STORE8D(carried, x);
    }
    if (row < rows) {
        for (int k = lo; k < hi; k++) {
            double *x = base + (size_t)k * stride + row, *y = x + stride;
            const double c = cosines[k], s = sines[k];
            for (int i = 0; i < rows - row; i++) {
                const double xi = x[i], yi = y[i];
                x[i] = c * xi + s * yi;
                y[i] = c * yi - s * xi;
            }
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
#define QK_HAS_X86 1
#define QK_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define QK_AVX2 __attribute__((target("avx2,fma")))

QK_AVX512 static void gemm_tn_avx512(int m, int n, int count, const float *a, int lda, const int32_t *rows,
                                     const float *b, int ldb, double *c, int ldc) {
    gemm_tn(m, n, count, a, lda, rows, b, ldb, c, ldc, 12);
}
QK_AVX2 static void gemm_tn_avx2(int m, int n, int count, const float *a, int lda, const int32_t *rows,
                                 const float *b, int ldb, double *c, int ldc) {
    gemm_tn(m, n, count, a, lda, rows, b, ldb, c, ldc, 6);
}
QK_AVX512 static void scores_avx512(int row_count, int depth, const float *x, int ldx, const float *panels,
                                    int panel_count, float *out, int ldo) {
    scores(row_count, depth, x, ldx, panels, panel_count, out, ldo, 12);
}
QK_AVX2 static void scores_avx2(int row_count, int depth, const float *x, int ldx, const float *panels,
                                int panel_count, float *out, int ldo) {
    scores(row_count, depth, x, ldx, panels, panel_count, out, ldo, 6);
}
QK_AVX512 static void collect_avx512(int row_count, const float *s, int lds, int32_t first_row, const int32_t *tokens,
                                     double *token_sums, int ldt, qk_top *top) {
    collect(row_count, s, lds, first_row, tokens, token_sums, ldt, top);
}
QK_AVX2 static void collect_avx2(int row_count, const float *s, int lds, int32_t first_row, const int32_t *tokens,
                                 double *token_sums, int ldt, qk_top *top) {
    collect(row_count, s, lds, first_row, tokens, token_sums, ldt, top);
}
QK_AVX512 static int decode_rows_avx512(qk_decode_type type, const void *source, long row_stride, float *out, int width,
                                        int rows) {
    return decode_rows(type, source, row_stride, out, width, rows);
}
QK_AVX2 static int decode_rows_avx2(qk_decode_type type, const void *source, long row_stride, float *out, int width,
                                    int rows) {
    return decode_rows(type, source, row_stride, out, width, rows);
}
QK_AVX512 static void reflect_columns_avx512(const double *v, double tau, double *first, long stride, int columns,
                                            int height) {
    reflect_columns(v, tau, first, stride, columns, height);
}
QK_AVX2 static void reflect_columns_avx2(const double *v, double tau, double *first, long stride, int columns,
                                        int height) {
    reflect_columns(v, tau, first, stride, columns, height);
}
QK_AVX512 static void reflect_rows_avx512(const double *v, double tau, double *first, long stride, int columns,
                                         int height, double *work) {
    reflect_rows(v, tau, first, stride, columns, height, work);
}
QK_AVX2 static void reflect_rows_avx2(const double *v, double tau, double *first, long stride, int columns, int height,
                                     double *work) {
    reflect_rows(v, tau, first, stride, columns, height, work);
}
QK_AVX512 static void rotate_chain_avx512(double *base, int rows, long stride, int lo, int hi, const double *cosines,
                                         const double *sines) {
    rotate_chain(base, rows, stride, lo, hi, cosines, sines);
}
QK_AVX2 static void rotate_chain_avx2(double *base, int rows, long stride, int lo, int hi, const double *cosines,
                                     const double *sines) {
    rotate_chain(base, rows, stride, lo, hi, cosines, sines);
}
#endif

static void reflect_columns_portable(const double *v, double tau, double *first, long stride, int columns, int height) {
    reflect_columns(v, tau, first, stride, columns, height);
}
static void reflect_rows_portable(const double *v, double tau, double *first, long stride, int columns, int height,
                                  double *work) {
    reflect_rows(v, tau, first, stride, columns, height, work);
}
static void rotate_chain_portable(double *base, int rows, long stride, int lo, int hi, const double *cosines,
                                  const double *sines) {
    rotate_chain(base, rows, stride, lo, hi, cosines, sines);
}

static int decode_rows_portable(qk_decode_type type, const void *source, long row_stride, float *out, int width,
                                int rows) {
    return decode_rows(type, source, row_stride, out, width, rows);
}

static void gemm_tn_portable(int m, int n, int count, const float *a, int lda, const int32_t *rows, const float *b,
                             int ldb, double *c, int ldc) {
    gemm_tn(m, n, count, a, lda, rows, b, ldb, c, ldc, 2);
}
static void scores_portable(int row_count, int depth, const float *x, int ldx, const float *panels, int panel_count,
                            float *out, int ldo) {
    scores(row_count, depth, x, ldx, panels, panel_count, out, ldo, 2);
}
static void collect_portable(int row_count, const float *s, int lds, int32_t first_row, const int32_t *tokens,
                             double *token_sums, int ldt, qk_top *top) {
    collect(row_count, s, lds, first_row, tokens, token_sums, ldt, top);
}

qk_isa qk_detected_isa(void) {
#ifdef QK_HAS_X86
    // __builtin_cpu_supports reads features cached once per process by __builtin_cpu_init.
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq")) {
        return QK_ISA_AVX512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return QK_ISA_AVX2;
#endif
    return QK_ISA_PORTABLE;
}

static int default_isa = -1;

qk_isa qk_default_isa(void) {
    int isa = __atomic_load_n(&default_isa, __ATOMIC_RELAXED);
    if (isa >= 0) return (qk_isa)isa;
    const qk_isa detected = qk_detected_isa();
    isa = (int)detected;
    const char *name = getenv("QKCAT_KERNELS");
    if (name && strcmp(name, "portable") == 0) isa = QK_ISA_PORTABLE;
    if (name && strcmp(name, "avx2") == 0 && detected >= QK_ISA_AVX2) isa = QK_ISA_AVX2;
    __atomic_store_n(&default_isa, isa, __ATOMIC_RELAXED);
    return (qk_isa)isa;
}

qk_isa qk_resolve_isa(int requested) {
    if (requested < 0) return qk_default_isa();
    const qk_isa detected = qk_detected_isa();
    return requested < (int)detected ? (qk_isa)requested : detected;
}

/// The kernels of one instruction set.
typedef struct {
    void (*gemm_tn)(int, int, int, const float *, int, const int32_t *, const float *, int, double *, int);
    void (*scores)(int, int, const float *, int, const float *, int, float *, int);
    void (*collect)(int, const float *, int, int32_t, const int32_t *, double *, int, qk_top *);
    int (*decode_rows)(qk_decode_type, const void *, long, float *, int, int);
    void (*reflect_columns)(const double *, double, double *, long, int, int);
    void (*reflect_rows)(const double *, double, double *, long, int, int, double *);
    void (*rotate_chain)(double *, int, long, int, int, const double *, const double *);
} qk_variant;

static const qk_variant variants[] = {
    [QK_ISA_PORTABLE] = {gemm_tn_portable, scores_portable, collect_portable, decode_rows_portable, reflect_columns_portable,
                          reflect_rows_portable, rotate_chain_portable},
#ifdef QK_HAS_X86
    [QK_ISA_AVX2] = {gemm_tn_avx2, scores_avx2, collect_avx2, decode_rows_avx2, reflect_columns_avx2, reflect_rows_avx2,
                      rotate_chain_avx2},
    [QK_ISA_AVX512] = {gemm_tn_avx512, scores_avx512, collect_avx512, decode_rows_avx512, reflect_columns_avx512,
                        reflect_rows_avx512, rotate_chain_avx512},
#endif
};

void qk_gemm_tn_f64acc(int isa, int m, int n, int count, const float *a, int lda, const int32_t *rows, const float *b,
                       int ldb, double *c, int ldc) {
    variants[qk_resolve_isa(isa)].gemm_tn(m, n, count, a, lda, rows, b, ldb, c, ldc);
}

void qk_scores(int isa, int row_count, int depth, const float *x, int ldx, const float *panels, int panel_count,
               float *out, int ldo) {
    variants[qk_resolve_isa(isa)].scores(row_count, depth, x, ldx, panels, panel_count, out, ldo);
}

void qk_collect(int isa, int row_count, const float *scores, int lds, int32_t first_row, const int32_t *tokens,
                double *token_sums, int ldt, qk_top *top) {
    variants[qk_resolve_isa(isa)].collect(row_count, scores, lds, first_row, tokens, token_sums, ldt, top);
}

int qk_decode_rows(int isa, qk_decode_type type, const void *source, long row_stride, float *out, int width, int rows) {
    return variants[qk_resolve_isa(isa)].decode_rows(type, source, row_stride, out, width, rows);
}

void qk_reflect_columns(int isa, const double *v, double tau, double *first, long stride, int columns, int height) {
    variants[qk_resolve_isa(isa)].reflect_columns(v, tau, first, stride, columns, height);
}

void qk_reflect_rows(int isa, const double *v, double tau, double *first, long stride, int columns, int height,
                     double *work) {
    variants[qk_resolve_isa(isa)].reflect_rows(v, tau, first, stride, columns, height, work);
}

void qk_rotate_chain(int isa, double *base, int rows, long stride, int lo, int hi, const double *cosines,
                     const double *sines) {
    variants[qk_resolve_isa(isa)].rotate_chain(base, rows, stride, lo, hi, cosines, sines);
}
