// Kernels written with x86 vector intrinsics, compiled for AVX2/FMA/F16C through target attributes and
// chosen at run time (the package builds for baseline x86-64, where Swift's SIMD types become SSE2).
#ifndef TANDEM_KERNELS_H
#define TANDEM_KERNELS_H

#include <stdint.h>

/// Whether this CPU runs the AVX2 kernels (AVX2, FMA and F16C); always 0 off x86-64.
int tandem_has_avx2(void);

/// y[r * n + j] = Σ_i x[r * k + i] · w[j * k + i] for input rows r < m and weight rows first ≤ j < last, with
/// w holding bfloat16 (is_bfloat16 = 1) or float16 bits. Requires tandem_has_avx2().
void tandem_linear16_avx2(
    int is_bfloat16, const float *x, long m, long k, const uint16_t *w, long n, long first, long last, float *y);

/// dst[i] = source[i] widened to fp32 for i < n rounded down to a multiple of 8, bfloat16 (is_bfloat16 = 1) or
/// float16 bits; bit-exact with HalfConversion (a NaN keeps its payload unquieted, as the scalar conversion
/// does). Returns how many values it widened. Requires tandem_has_avx2().
long tandem_widen16_avx2(int is_bfloat16, const uint16_t *source, long n, float *dst);

/// out[r * n + i] = silu(g) · u with g = gate_up[r * 2n + i], u = gate_up[r * 2n + n + i] (Llama's gated MLP),
/// e^x by polynomial. Requires tandem_has_avx2().
void tandem_silu_mul_avx2(const float *gate_up, long rows, long n, float *out);

/// How a paged KV cache stores its values.
#define TANDEM_KV_FLOAT32 0
#define TANDEM_KV_BFLOAT16 1
#define TANDEM_KV_FLOAT16 2

/// Attention of one query position (`queries`, `output`: kv_heads · group rows of d floats; query head h reads kv
/// head h / group) over the visible positions first ..< last of a paged cache of `storage` values: kv head h's row
/// of position p lies at element ((block_table[p / block_size] · kv_heads + h) · block_size + p % block_size) · d of
/// each cache. Scores are q·k · scale, softmaxed online a tile of `tile` positions at a time; `scratch` holds
/// kv_heads · group · (tile + 2) floats. Reads the keys and values in place. Returns 0, touching nothing, when it
/// does not apply (d not a multiple of 8, an empty range, no AVX2 build); else 1. Requires tandem_has_avx2().
int tandem_attend_one_avx2(
    int storage, const float *queries, long kv_heads, long group, long d, const void *key_cache, const void *value_cache,
    const int32_t *block_table, long block_size, long first, long last, float scale, long tile, float *scratch, float *output);

/// Whether this CPU runs the bfloat16 kernels below (AVX-512 F/BW and BF16); always 0 off x86-64.
int tandem_has_avx512_bf16(void);

/// Elements (uint16) of a `[n, k]` bfloat16 weight packed by `tandem_pack_bf16` (n rounded up to 16, k to 2).
long tandem_packed_bf16_elements(long n, long k);

/// Packs a row-major `[n, k]` bfloat16 weight for `tandem_gemm_packed_bf16`: blocks of 16 rows, and within a
/// block, for each pair of k, the 16 rows' two values side by side (zeros pad the last block and an odd k).
void tandem_pack_bf16(const uint16_t *w, long n, long k, uint16_t *packed);

/// out[r * ldx + i] = x[r * k + i] rounded to bfloat16 (nearest even) for i < k, zero for k ≤ i < ldx.
/// Requires tandem_has_avx512_bf16().
void tandem_round_bf16(const float *x, long rows, long k, long ldx, uint16_t *out);

/// y[r * n + j] = Σ_i x[r * ldx + i] · w[j, i] (bfloat16 products, fp32 sums) for rows r < m and the columns
/// of 16-column blocks first_block ≤ b < last_block (j < n); `packed` from tandem_pack_bf16, ldx even.
/// Requires tandem_has_avx512_bf16().
void tandem_gemm_packed_bf16(
    const uint16_t *x, long ldx, long m, long k, const uint16_t *packed, long n, long first_block, long last_block, float *y);

/// ggml's block formats (its type numbers): 32 values per block, an fp16 scale and 8-bit (Q8_0, 34 bytes) or
/// 4-bit (Q4_0, 18 bytes) values; the k-quants, 256 values per super-block of sub-blocks with their own integer
/// scales (Q4_K, 144 bytes; Q6_K, 210 bytes); and Q8_K (292 bytes), what the k-quants' inputs are quantized to.
#define TANDEM_Q8_0 8
#define TANDEM_Q4_0 2
#define TANDEM_Q4_K 12
#define TANDEM_Q6_K 14
#define TANDEM_Q8_K 15

/// Bytes of one block of `format`.
long tandem_quant_block_bytes(int format);

/// Values in one block of `format` (32, or 256 for the k-quants).
long tandem_quant_block_elements(int format);

/// The format a layer's inputs are quantized to for weights of `format`: Q8_0, or Q8_K for the k-quants.
int tandem_quant_input_format(int format);

/// Quantizes a row of k floats (k a multiple of the block) into blocks of `format` — any format above — as
/// ggml's reference quantize_row_*_ref functions do (same scales, same rounding, same bytes).
void tandem_quantize_row(int format, const float *x, long k, void *out);

/// out[rows · k] = the values of rows of k values in blocks of `format` (any format above).
void tandem_dequantize_rows(int format, const void *w, long rows, long k, float *out);

/// Reorders an `[n, k]` weight of Q8_0, Q4_0, Q4_K or Q6_K blocks (ggml's bytes, row after row) in place into the
/// layout tandem_linear_quant multiplies: rows in groups of 8, each group block after block, each block read as its
/// two-byte fields (the fp16 scales) and then its other bytes as four-byte fields in ggml's order (the k-quants'
/// sub-block scales, the quants, 4 bytes a piece), each field of the 8 rows side by side; rows past the last whole
/// group unchanged. Other formats are left as they are.
void tandem_quant_interleave(int format, void *w, long n, long k);

/// out[(j − first) · k + i] = value i of row j of an `[n, k]` weight of `format` as tandem_quant_interleave left
/// it, for first ≤ j < first + count.
void tandem_dequantize_weight_rows(int format, const void *w, long n, long k, long first, long count, float *out);

/// y[r * n + j] = weight row j (k values in blocks of `format`, interleaved by tandem_quant_interleave) times input
/// row r quantized to tandem_quant_input_format(format) (`xq`: m rows), for r < m and first ≤ j < last: integer
/// products per block, scaled as ggml's vec_dot does. The AVX2 path (use_avx2 = 1, needs tandem_has_avx2()) and the portable one
/// add the same integer products; ranges starting and ending on multiples of 8 (or n) run fastest.
void tandem_linear_quant(int format, int use_avx2, const void *xq, long m, long k, const void *w, long n, long first, long last, float *y);

#endif
