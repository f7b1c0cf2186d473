// ggml's k-quant blocks and the entry points quant.c hands them to (internal to CTandemKernels).
#ifndef TANDEM_QUANT_K_H
#define TANDEM_QUANT_K_H

#include <stdint.h>

typedef struct {
    uint16_t d;           // super-block scale of the sub-block scales, fp16
    uint16_t dmin;        // super-block scale of the sub-block minimums, fp16
    uint8_t scales[12];   // eight 6-bit scales and eight 6-bit minimums, packed
    uint8_t qs[128];      // 256 4-bit values
} block_q4_K;

typedef struct {
    uint8_t ql[128];      // low four bits of 256 values
    uint8_t qh[64];       // high two bits
    int8_t scales[16];    // one per 16 values
    uint16_t d;           // super-block scale, fp16
} block_q6_K;

typedef struct {
    float d;              // scale
    int8_t qs[256];       // values
    int16_t bsums[16];    // sums of each 16 values
} block_q8_K;

/// A row of k floats (k a multiple of 256) as Q8_K blocks, as ggml's quantize_row_q8_K_ref writes them.
void tandem_quantize_row_q8_K(const float *x, long k, void *out);

/// A row of k floats (k a multiple of 256) as Q4_K or Q6_K super-blocks, as ggml's quantize_row_q4_K_ref and
/// quantize_row_q6_K_ref write them (quantize_k.c).
void tandem_quantize_row_q4_K(const float *x, long k, void *out);
void tandem_quantize_row_q6_K(const float *x, long k, void *out);

/// The values of `blocks` super-blocks of Q4_K, Q6_K or Q8_K (the AVX2 path with use_avx2 = 1).
void tandem_dequantize_k(int format, int use_avx2, const void *w, long blocks, float *out);

/// Row r's block b of a group of 8 rows interleaved by tandem_quant_interleave (Q8_0, Q4_0, Q4_K or Q6_K), as ggml's
/// bytes, into `block` (quant.c).
void tandem_gather_block(int format, const char *group, long b, int r, char *block);

/// One weight (n rows of `row_bytes`, `blocks` blocks each; 8-row groups interleaved where the format is) against
/// the input rows, with the per-input-block tables the kernels read: what the group and row kernels receive.
typedef struct {
    int format;
    const char *w;
    long n, row_bytes, blocks;
    const void *x;          // the input rows, quantized (Q8_0 or Q8_K blocks), `blocks` each
    const float *scales;    // each input block's scale as a float (the Q8_0 group kernels)
    const int32_t *sums;    // each input block's sums: Q4_0's offset 8 · Σ q, Q4_K's four paired 32-value sums
} quant_product;

/// The 8 rows of the interleaved group starting at `group` against input row r.
typedef void (*quant_group_kernel)(const quant_product *p, const char *group, long r, float results[8]);

/// Weight row j against input row r.
typedef float (*quant_row_kernel)(const quant_product *p, long j, long r);

/// y[r · n + j] for rows first ..< last and input rows r < m: whole groups by `group` (a group stays in L1/L2 while
/// the input rows pass it; a group the range cuts is computed whole and the rows inside kept), the rows past the
/// last group — or every row, when `group` is NULL — by `row` (quant.c).
void tandem_quant_rows(const quant_product *p, quant_group_kernel group, quant_row_kernel row, long m, long first, long last, float *y);

/// tandem_linear_quant for Q4_K and Q6_K weights (interleaved), the inputs Q8_K.
void tandem_linear_quant_k(int format, int use_avx2, const void *xq, long m, long k, const void *w, long n, long first, long last, float *y);

#endif
