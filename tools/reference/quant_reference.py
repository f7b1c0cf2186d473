#!/usr/bin/env python3
"""Independent reference for Tandem's quantized weights: llama.cpp's own Python library, the `gguf` package, whose
quantizers are written to give the bytes of ggml's reference C quantizers.

  quant_reference.py FORMAT WEIGHTS.f32 ROWS COLUMNS [INPUTS.f32 M]
      FORMAT is q8_0, q4_0 or bf16; WEIGHTS.f32 holds ROWS × COLUMNS little-endian float32 values, row-major. Prints JSON:
      `bytes` (hex) — the rows quantized by gguf.quants.quantize; `values` — those bytes dequantized by
      gguf.quants.dequantize. With INPUTS.f32 (M × COLUMNS float32): `product_quantized_inputs` — each input row
      quantized to Q8_0 and dequantized, times the dequantized weights transposed, in float64 (what llama.cpp's
      vec_dot computes, up to the order of the sums).
  quant_reference.py quantize FORMAT WEIGHTS.f32 ROWS COLUMNS
      FORMAT is q4_k or q6_k (gguf has no quantizer for them): `bytes` (hex) — the rows quantized as ggml's
      quantize_row_q4_K_ref / quantize_row_q6_K_ref choose their scales, written here in numpy from that
      algorithm (float32 throughout, sums in ggml's order, no fused multiply-adds); `values` — those bytes
      dequantized by gguf.quants.dequantize.
  quant_reference.py allreduce FORMAT RANKS COUNT INPUTS.f32 [once]
      FORMAT is int8 or bfloat16 (Tandem's TANDEM_ACTIVATION_SYNC); INPUTS.f32 holds RANKS rows of COUNT float32
      values. Each rank's values, padded with zeros to whole 32-value blocks, go through FORMAT (gguf's Q8_0 or
      BF16 quantize, then dequantize), are summed in float32 in rank order, and the sum goes through FORMAT again
      (not with `once`): `values` (COUNT) — what an all-reduce that carries encoded values gives every rank (with
      `once`, one that gathers the encoded tensors and sums them where they arrive).
  quant_reference.py blocks FORMAT BLOCKS.bin ROWS COLUMNS INPUTS.f32 M
      FORMAT is q4_k or q6_k; BLOCKS.bin holds ROWS rows of COLUMNS values in that format's blocks (gguf has no
      quantizer for them). Prints `values` (gguf.quants.dequantize), `input_blocks` (hex: each input row quantized to
      Q8_K as ggml's quantize_row_q8_K_ref writes it — written here, as gguf has no Q8_K quantizer: the value of
      largest magnitude, sign kept, maps to −127, the rest round to nearest even, at most 127; float32 scale 1/iscale;
      sums of each 16) and `product_quantized_inputs` (those inputs dequantized times the values, float64).
"""
import json
import sys

import numpy as np
from gguf import quants, GGMLQuantizationType

FORMATS = {"q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0, "bf16": GGMLQuantizationType.BF16}
K_FORMATS = {"q4_k": GGMLQuantizationType.Q4_K, "q6_k": GGMLQuantizationType.Q6_K}
F = np.float32


def nearest(values):
    """ggml's nearest_int: round to nearest, ties to even (exact for |v| < 2^22)."""
    return np.rint(values).astype(np.int64)


def fit_scale_min(x, w, nmax):
    """ggml's make_qkx2_quants (rmin −1, rdelta 0.1, 20 steps, squared error) on each row of `x` [S, n] with
    weights `w`: (levels [S, n] in 0…nmax, scale [S], minimum [S] ≥ 0). Sums run element by element, as in C."""
    count, n = x.shape
    low, high, sum_w, sum_x = x[:, 0].copy(), x[:, 0].copy(), w[:, 0].copy(), w[:, 0] * x[:, 0]
    for i in range(1, n):
        low, high = np.minimum(low, x[:, i]), np.maximum(high, x[:, i])
        sum_w, sum_x = sum_w + w[:, i], sum_x + w[:, i] * x[:, i]
    low = np.where(low > 0, F(0), low)
    flat = high == low
    span = np.where(flat, F(1), high - low)
    iscale = F(nmax) / span
    scale = F(1) / iscale
    levels = np.clip(nearest(iscale[:, None] * (x - low[:, None])), 0, nmax)
    best = np.zeros(count, dtype=F)
    for i in range(n):
        diff = scale * levels[:, i].astype(F) + low - x[:, i]
        best = best + w[:, i] * (diff * diff)
    for step in range(21):
        span = np.where(flat, F(1), high - low)  # the grid follows the minimum as better fits replace it
        iscale = (F(-1) + F(0.1) * F(step) + F(nmax)) / span
        trial = np.clip(nearest(iscale[:, None] * (x - low[:, None])), 0, nmax)
        sum_l, sum_l2, sum_xl = (np.zeros(count, dtype=F) for _ in range(3))
        for i in range(n):
            l = trial[:, i].astype(F)
            sum_l, sum_l2, sum_xl = sum_l + w[:, i] * l, sum_l2 + w[:, i] * l * l, sum_xl + w[:, i] * l * x[:, i]
        det = sum_w * sum_l2 - sum_l * sum_l
        fits = det > 0
        safe = np.where(fits, det, F(1))
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / safe
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / safe
        positive = this_min > 0
        this_scale = np.where(positive, sum_xl / np.where(sum_l2 == 0, F(1), sum_l2), this_scale)
        this_min = np.where(positive, F(0), this_min)
        error = np.zeros(count, dtype=F)
        for i in range(n):
            diff = this_scale * trial[:, i].astype(F) + this_min - x[:, i]
            error = error + w[:, i] * (diff * diff)
        better = fits & (error < best) & ~flat
        levels = np.where(better[:, None], trial, levels)
        best, scale, low = np.where(better, error, best), np.where(better, this_scale, scale), np.where(better, this_min, low)
    levels[flat], scale = 0, np.where(flat, F(0), scale)
    return levels, scale, -low


def fit_scale(x, nmax):
    """ggml's make_qx_quants with rmse_type 1 (weights x²) on each row of `x` [S, n]: (levels [S, n] offset by nmax,
    scale [S])."""
    count, n = x.shape
    index = np.argmax(np.abs(x), axis=1)  # the first of the largest magnitudes, as ggml's strict > keeps
    peak = x[np.arange(count), index]
    zero = np.abs(peak) < F(1e-15)
    peak = np.where(zero, F(1), peak)

    def fit(iscale):
        l = np.clip(nearest(iscale[:, None] * x), -nmax, nmax - 1)
        sum_lx, sum_l2 = np.zeros(count, dtype=F), np.zeros(count, dtype=F)
        for i in range(n):
            w, li = x[:, i] * x[:, i], l[:, i].astype(F)
            sum_lx, sum_l2 = sum_lx + w * x[:, i] * li, sum_l2 + w * li * li
        return l + nmax, sum_lx, sum_l2

    levels, sum_lx, sum_l2 = fit(F(-nmax) / peak)
    scale = np.where(sum_l2 != 0, sum_lx / np.where(sum_l2 == 0, F(1), sum_l2), F(0))
    best = scale * sum_lx
    for step in range(-9, 10):
        if step == 0:
            continue
        trial, sum_lx, sum_l2 = fit(-(F(nmax) + F(0.1) * F(step)) / peak)
        better = (sum_l2 > 0) & (sum_lx * sum_lx > best * sum_l2)
        levels = np.where(better[:, None], trial, levels)
        scale = np.where(better, sum_lx / np.where(sum_l2 == 0, F(1), sum_l2), scale)
        best = np.where(better, scale * sum_lx, best)
    levels[zero], scale = 0, np.where(zero, F(0), scale)
    return levels, scale


def quantize_q4_K(weights):
    """Rows of `weights` (a multiple of 256 wide) as ggml's quantize_row_q4_K_ref writes them: [rows, bytes]."""
    x = weights.astype(F).reshape(-1, 8, 32)
    blocks = x.shape[0]
    sub = x.reshape(-1, 32)
    sum_x2 = np.zeros(sub.shape[0], dtype=F)
    for i in range(32):
        sum_x2 = sum_x2 + sub[:, i] * sub[:, i]
    w = np.sqrt(sum_x2 / F(32))[:, None] + np.abs(sub)
    levels, scales, minimums = fit_scale_min(sub, w, 15)
    levels, scales, minimums = levels.reshape(blocks, 8, 32), scales.reshape(blocks, 8), minimums.reshape(blocks, 8)
    max_scale = np.maximum(scales.max(axis=1), F(0))
    max_min = np.maximum(minimums.max(axis=1), F(0))
    inverse_scale = np.where(max_scale > 0, F(63) / np.where(max_scale > 0, max_scale, F(1)), F(0))
    inverse_min = np.where(max_min > 0, F(63) / np.where(max_min > 0, max_min, F(1)), F(0))
    sc = np.minimum(nearest(inverse_scale[:, None] * scales) & 0xFF, 63).astype(np.uint8)  # a byte, then capped
    m = np.minimum(nearest(inverse_min[:, None] * minimums) & 0xFF, 63).astype(np.uint8)
    d, dmin = (max_scale / F(63)).astype(np.float16), (max_min / F(63)).astype(np.float16)
    step = d.astype(F)[:, None] * sc.astype(F)
    offset = dmin.astype(F)[:, None] * m.astype(F)
    safe = np.where(step == 0, F(1), step)
    requantized = np.clip(nearest((x + offset[:, :, None]) / safe[:, :, None]), 0, 15)
    levels = np.where((step == 0)[:, :, None], levels, requantized).astype(np.uint8)  # a zero scale keeps the fit
    packed = np.zeros((blocks, 12), dtype=np.uint8)
    for j in range(4):
        packed[:, j] = sc[:, j] | ((sc[:, j + 4] >> 4) << 6)
        packed[:, j + 4] = m[:, j] | ((m[:, j + 4] >> 4) << 6)
        packed[:, j + 8] = (sc[:, j + 4] & 15) | ((m[:, j + 4] & 15) << 4)
    qs = np.concatenate([levels[:, 2 * g] | (levels[:, 2 * g + 1] << 4) for g in range(4)], axis=1)
    out = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), packed, qs], axis=1)
    return out.reshape(weights.shape[0], -1)


def quantize_q6_K(weights):
    """Rows of `weights` (a multiple of 256 wide) as ggml's quantize_row_q6_K_ref writes them: [rows, bytes]."""
    x = weights.astype(F).reshape(-1, 16, 16)
    blocks = x.shape[0]
    levels, scales = fit_scale(x.reshape(-1, 16), 32)
    levels, scales = levels.reshape(blocks, 256), scales.reshape(blocks, 16)
    index = np.argmax(np.abs(scales), axis=1)
    max_scale = scales[np.arange(blocks), index]
    empty = np.abs(max_scale) < F(1e-15)
    iscale = F(-128) / np.where(empty, F(1), max_scale)
    d = (F(1) / iscale).astype(np.float16)
    sc = np.minimum(nearest(iscale[:, None] * scales), 127).astype(np.int8)
    step = d.astype(F)[:, None] * sc.astype(F)
    safe = np.where(step == 0, F(1), step)
    requantized = np.clip(nearest(x / safe[:, :, None]), -32, 31) + 32
    levels = np.where((step == 0)[:, :, None], levels.reshape(blocks, 16, 16), requantized).reshape(blocks, 256).astype(np.uint8)
    ql, qh = np.zeros((blocks, 128), dtype=np.uint8), np.zeros((blocks, 64), dtype=np.uint8)
    for half in range(2):
        q1, q2, q3, q4 = (levels[:, half * 128 + 32 * i:half * 128 + 32 * (i + 1)] for i in range(4))
        ql[:, half * 64:half * 64 + 32] = (q1 & 15) | ((q3 & 15) << 4)
        ql[:, half * 64 + 32:half * 64 + 64] = (q2 & 15) | ((q4 & 15) << 4)
        qh[:, half * 32:(half + 1) * 32] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    out = np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)
    out[empty] = 0
    return out.reshape(weights.shape[0], -1)


def quantize_k(arguments):
    kind = arguments[0]
    rows, columns = int(arguments[2]), int(arguments[3])
    weights = np.fromfile(arguments[1], dtype="<f4").reshape(rows, columns)
    with np.errstate(all="ignore"):
        packed = (quantize_q4_K if kind == "q4_k" else quantize_q6_K)(weights)
    values = quants.dequantize(packed, K_FORMATS[kind]).reshape(rows, columns)
    print(json.dumps({"bytes": packed.tobytes().hex(), "values": [float(v) for v in values.reshape(-1)]}))


def q8_K(inputs):
    """Each row of `inputs` (float32, a multiple of 256 wide) as Q8_K blocks: (bytes, dequantized values)."""
    rows, columns = inputs.shape
    raw, values = bytearray(), np.zeros((rows, columns), dtype=np.float64)
    for r in range(rows):
        for b in range(columns // 256):
            x = inputs[r, b * 256:(b + 1) * 256].astype(np.float32)
            index = int(np.argmax(np.abs(x)))  # the first of the largest magnitudes, as ggml's strict > keeps
            if x[index] == 0:
                raw += bytes(292)
                continue
            iscale = np.float32(-127.0) / x[index]
            q = np.minimum(np.rint((iscale * x).astype(np.float32)), 127).astype(np.int8)
            d = np.float32(1) / iscale
            raw += np.float32(d).tobytes() + q.tobytes() + q.astype(np.int16).reshape(16, 16).sum(axis=1).astype("<i2").tobytes()
            values[r, b * 256:(b + 1) * 256] = np.float64(d) * q.astype(np.float64)
    return bytes(raw), values


def blocks(arguments):
    kind = K_FORMATS[arguments[0]]
    rows, columns = int(arguments[2]), int(arguments[3])
    packed = np.fromfile(arguments[1], dtype=np.uint8).reshape(rows, -1)
    values = quants.dequantize(packed, kind).reshape(rows, columns)
    m = int(arguments[5])
    inputs = np.fromfile(arguments[4], dtype="<f4").reshape(m, columns)
    raw, quantized_inputs = q8_K(inputs)
    print(json.dumps({"values": [float(v) for v in values.reshape(-1)], "input_blocks": raw.hex(),
                      "product_quantized_inputs": (quantized_inputs @ values.astype(np.float64).T).reshape(-1).tolist()}))


def allreduce(arguments):
    kind = {"int8": GGMLQuantizationType.Q8_0, "bfloat16": GGMLQuantizationType.BF16}[arguments[0]]
    ranks, count = int(arguments[1]), int(arguments[2])
    inputs = np.fromfile(arguments[3], dtype="<f4").reshape(ranks, count)
    padded = (count + 31) // 32 * 32

    def through(values):
        row = np.zeros((1, padded), dtype=np.float32)
        row[0, :count] = values
        return quants.dequantize(quants.quantize(row, kind), kind).reshape(-1)[:count].astype(np.float32)

    total = np.zeros(count, dtype=np.float32)
    for rank in range(ranks):
        total = total + through(inputs[rank])
    once = arguments[4:] == ["once"]
    if not once and arguments[4:]:
        raise SystemExit(f"allreduce: unknown argument {arguments[4:]}")
    print(json.dumps({"values": [float(v) for v in (total if once else through(total))]}))


def main(arguments):
    if arguments[0] == "blocks":
        return blocks(arguments[1:])
    if arguments[0] == "quantize":
        return quantize_k(arguments[1:])
    if arguments[0] == "allreduce":
        return allreduce(arguments[1:])
    kind = FORMATS[arguments[0]]
    rows, columns = int(arguments[2]), int(arguments[3])
    weights = np.fromfile(arguments[1], dtype="<f4").reshape(rows, columns)
    packed = quants.quantize(weights, kind)
    values = quants.dequantize(packed, kind).reshape(rows, columns)
    result = {"bytes": packed.tobytes().hex(), "values": [float(v) for v in values.reshape(-1)]}
    if len(arguments) > 4:
        m = int(arguments[5])
        inputs = np.fromfile(arguments[4], dtype="<f4").reshape(m, columns)
        quantized_inputs = quants.dequantize(quants.quantize(inputs, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0).reshape(m, columns)
        result["product_quantized_inputs"] = (quantized_inputs.astype(np.float64) @ values.astype(np.float64).T).reshape(-1).tolist()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
