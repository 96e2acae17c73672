/* The CPU kernels of compresslib.piecewise for float32: a layer's forward in one pass over its input, its backward
 * in one pass over the gradient, in blocks small enough to stay in the L1 cache between a block's loops.
 *
 * The tensor is viewed as (outer, groups, inner), contiguous; a group (APLU's channel; LMA has one) picks a row of
 * the (groups, K) slope and offset tables, K <= 32. Each function works on the outer rows [first, stop). The
 * backward's per-slot sums go to a (2, groups * K) float64 array of the caller's (of grad * x, then of grad),
 * which the caller zeroes.
 *
 * The outputs and the input gradient are eager PyTorch's to the bit: the same float32 operations in the same order,
 * with a multiply-add fused where ATen's own kernels fuse it (built with -ffp-contract=fast: on a CPU with FMA).
 * The slot sums add float32 partial sums of at most BLOCK / LANES elements in float64. Written with GCC's vector
 * extensions: a table row lives in two vector registers and a lookup is a shuffle. On x86-64 with GCC each
 * function is compiled for x86-64-v4 (AVX-512), v3 (AVX2) and the baseline, and the CPU picks its own.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

#define BLOCK 2048 /* elements per block: its inputs, outputs and scratch fit in a 48 KiB L1 cache */
#define LANES 16

typedef float floats __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t ints __attribute__((vector_size(LANES * sizeof(int32_t))));
typedef uint8_t bytes __attribute__((vector_size(LANES)));

typedef struct {
    int64_t first, stop;         /* the outer rows to do */
    int64_t groups, inner;       /* the view (outer, groups, inner) */
    int32_t segments;            /* K */
    const float *slope, *offset; /* (groups, K) */
} Layout;

/* A table row of up to 2 * LANES entries, in two vectors. */
typedef struct {
    floats low, high;
} Row;

static inline Row row_of(const float *table, int32_t segments) {
    float padded[2 * LANES] = {0};
    memcpy(padded, table, (size_t)segments * sizeof(float));
    Row row;
    memcpy(&row.low, padded, sizeof(floats));
    memcpy(&row.high, padded + LANES, sizeof(floats));
    return row;
}

static inline floats lookup(Row row, ints index) {
#if defined(__clang__)
    floats out;
    for (int lane = 0; lane < LANES; lane++)
        out[lane] = index[lane] < LANES ? row.low[index[lane]] : row.high[index[lane] - LANES];
    return out;
#else
    return __builtin_shuffle(row.low, row.high, index);
#endif
}

static inline floats load(const float *p) {
    floats v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float *p, floats v) { memcpy(p, &v, sizeof v); }

static inline void store_segments(uint8_t *p, ints k) {
    const bytes narrow = __builtin_convertvector(k, bytes);
    memcpy(p, &narrow, sizeof narrow);
}

static inline floats pick(ints mask, floats yes, floats no) {
    return (floats)(((ints)yes & mask) | ((ints)no & ~mask));
}

/* A run of at most BLOCK elements [start, start + length): all in group `group`, or, when group == -1 (inner == 1:
 * the groups are the innermost dimension), element j of the run in group channel + j. */
typedef struct {
    int64_t start, length, group, channel;
} Block;

typedef struct {
    const Layout *layout;
    int64_t row, done; /* the current row (of groups elements when inner == 1, else of inner) and how much is done */
} Blocks;

static inline Blocks blocks_of(const Layout *layout) {
    return (Blocks){layout, layout->first * (layout->inner == 1 ? 1 : layout->groups), 0};
}

static inline int next_block(Blocks *it, Block *block) {
    const Layout *layout = it->layout;
    const int by_channel = layout->inner == 1;
    const int64_t row_length = by_channel ? layout->groups : layout->inner;
    const int64_t rows_end = by_channel ? layout->stop : layout->stop * layout->groups;
    if (it->done == row_length) {
        it->row++;
        it->done = 0;
    }
    if (it->row >= rows_end || row_length == 0)
        return 0;
    const int64_t left = row_length - it->done;
    block->start = it->row * row_length + it->done;
    block->length = left < BLOCK ? left : BLOCK;
    block->group = by_channel ? -1 : it->row % layout->groups;
    block->channel = by_channel ? it->done : 0;
    it->done += block->length;
    return 1;
}

/* out = offset[g, k] + slope[g, k] * x over a block whose segment indices are set, for a by-channel block (the
 * one-group blocks do it in their own vector loop). */
static inline void apply_by_channel(const Layout *layout, const Block *b, const float *restrict x,
                                    const uint8_t *restrict segment, float *restrict out) {
    const int64_t base = b->channel * layout->segments;
    for (int64_t c = 0; c < b->length; c++) {
        const int64_t slot = base + c * layout->segments + segment[b->start + c];
        out[b->start + c] = layout->offset[slot] + layout->slope[slot] * x[b->start + c];
    }
}

/* LMA: k = clamp(floor((x - lower) / width), 0, K - 1) (NaN in bin 0); one group. */
VECTOR_CLONES
void lma_forward(const Layout *layout, const float *restrict x, float lower, float width, float *restrict out,
                 uint8_t *restrict segment) {
    const float top = (float)(layout->segments - 1);
    const Row slope = row_of(layout->slope, layout->segments), offset = row_of(layout->offset, layout->segments);
    const floats zero = {0}, tops = zero + top;
    Blocks it = blocks_of(layout);
    Block b;
    while (next_block(&it, &b)) {
        const int64_t end = b.start + b.length, whole = b.start + b.length - b.length % LANES;
        for (int64_t j = b.start; j < whole; j += LANES) {
            const floats value = load(x + j);
            floats scaled = (value - lower) / width;
            scaled = pick(scaled >= 0.0f, scaled, zero); /* NaN too */
            const ints k = __builtin_convertvector(pick(scaled <= top, scaled, tops), ints);
            store(out + j, lookup(offset, k) + lookup(slope, k) * value);
            store_segments(segment + j, k);
        }
        for (int64_t j = whole; j < end; j++) {
            float scaled = (x[j] - lower) / width;
            scaled = scaled >= 0.0f ? scaled : 0.0f;
            segment[j] = (uint8_t)(int32_t)(scaled <= top ? scaled : top);
            out[j] = layout->offset[segment[j]] + layout->slope[segment[j]] * x[j];
        }
    }
}

/* APLU: k = (x > 0) + #{s : x >= b[g, s]}, with the hinge positions given as bt (S, groups). */
VECTOR_CLONES
void hinge_forward(const Layout *layout, const float *restrict x, const float *restrict bt, float *restrict out,
                   uint8_t *restrict segment) {
    const int32_t segments = layout->segments, hinges = segments - 2;
    Blocks it = blocks_of(layout);
    Block b;
    while (next_block(&it, &b)) {
        const int64_t end = b.start + b.length;
        if (b.group < 0) {
            for (int64_t c = 0; c < b.length; c++) {
                const float value = x[b.start + c];
                int32_t k = value > 0.0f;
                for (int32_t s = 0; s < hinges; s++)
                    k += value >= bt[s * layout->groups + b.channel + c];
                segment[b.start + c] = (uint8_t)k;
            }
            apply_by_channel(layout, &b, x, segment, out);
            continue;
        }
        const float *points = bt + b.group;
        const Row slope = row_of(layout->slope + b.group * segments, segments);
        const Row offset = row_of(layout->offset + b.group * segments, segments);
        const int64_t whole = end - b.length % LANES;
        for (int64_t j = b.start; j < whole; j += LANES) {
            const floats value = load(x + j);
            ints k = -(value > 0.0f); /* a true comparison is -1 */
            for (int32_t s = 0; s < hinges; s++)
                k -= value >= points[s * layout->groups];
            store(out + j, lookup(offset, k) + lookup(slope, k) * value);
            store_segments(segment + j, k);
        }
        for (int64_t j = whole; j < end; j++) {
            int32_t k = x[j] > 0.0f;
            for (int32_t s = 0; s < hinges; s++)
                k += x[j] >= points[s * layout->groups];
            segment[j] = (uint8_t)k;
            out[j] = layout->offset[b.group * segments + k] + layout->slope[b.group * segments + k] * x[j];
        }
    }
}

/* Adds a one-group block's per-segment sums of product and of grad to by_x[k] and plain[k]: a pass per segment
 * over the block (in L1), each a masked vector sum; a masked-out NaN or infinity stays out of the other slots. */
static inline void segment_sums(const int32_t *restrict segment, const float *restrict product,
                                const float *restrict grad, int64_t length, int32_t segments, double *restrict by_x,
                                double *restrict plain) {
    const int64_t whole = length - length % LANES;
    for (int32_t k = 0; k < segments; k++) {
        floats sum_x = {0}, sum = {0};
        const ints key = (ints){0} + k;
        for (int64_t j = 0; j < whole; j += LANES) {
            ints mask;
            memcpy(&mask, segment + j, sizeof mask);
            mask = mask == key;
            sum_x += (floats)((ints)load(product + j) & mask);
            sum += (floats)((ints)load(grad + j) & mask);
        }
        double total_x = 0.0, total = 0.0;
        for (int lane = 0; lane < LANES; lane++) {
            total_x += sum_x[lane];
            total += sum[lane];
        }
        for (int64_t j = whole; j < length; j++)
            if (segment[j] == k) {
                total_x += product[j];
                total += grad[j];
            }
        by_x[k] += total_x;
        plain[k] += total;
    }
}

/* grad_x = grad * slope[g, k] (when grad_x is not NULL); sums[0][g, k] += grad * x and sums[1][g, k] += grad
 * over the elements of slot (g, k) (when sums is not NULL). */
VECTOR_CLONES
void piecewise_backward(const Layout *layout, const float *restrict grad, const float *restrict x,
                        const uint8_t *restrict segment, float *restrict grad_x, double *restrict sums) {
    const int32_t segments = layout->segments;
    const int64_t slots = layout->groups * segments;
    float product[BLOCK] __attribute__((aligned(64)));
    int32_t segment_block[BLOCK] __attribute__((aligned(64)));
    Blocks it = blocks_of(layout);
    Block b;
    while (next_block(&it, &b)) {
        const float *restrict g = grad + b.start;
        if (b.group < 0) { /* a row of all groups: every element has a slot of its own */
            const int64_t base = b.channel * segments;
            for (int64_t c = 0; c < b.length; c++) {
                const int64_t slot = base + c * segments + segment[b.start + c];
                if (grad_x != NULL)
                    grad_x[b.start + c] = g[c] * layout->slope[slot];
                if (sums != NULL) {
                    sums[slot] += g[c] * x[b.start + c];
                    sums[slots + slot] += g[c];
                }
            }
            continue;
        }
        const int64_t base = b.group * segments, whole = b.length - b.length % LANES;
        for (int64_t j = 0; j < b.length; j++)
            segment_block[j] = segment[b.start + j];
        if (grad_x != NULL) {
            const Row slope = row_of(layout->slope + base, segments);
            for (int64_t j = 0; j < whole; j += LANES) {
                ints k;
                memcpy(&k, segment_block + j, sizeof k);
                store(grad_x + b.start + j, load(g + j) * lookup(slope, k));
            }
            for (int64_t j = whole; j < b.length; j++)
                grad_x[b.start + j] = g[j] * layout->slope[base + segment_block[j]];
        }
        if (sums != NULL) {
            for (int64_t j = 0; j < b.length; j++)
                product[j] = g[j] * x[b.start + j];
            segment_sums(segment_block, product, g, b.length, segments, sums + base, sums + slots + base);
        }
    }
}
