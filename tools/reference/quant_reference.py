#!/usr/bin/env python3
"""Independent reference for Tandem's quantized weights: llama.cpp's own Python library, the `gguf` package, whose
quantizers are written to give the bytes of ggml's reference C quantizers.

  quant_reference.py FORMAT WEIGHTS.f32 ROWS COLUMNS [INPUTS.f32 M]
      FORMAT is q8_0 or q4_0; WEIGHTS.f32 holds ROWS × COLUMNS little-endian float32 values, row-major. Prints JSON:
      `bytes` (hex) — the rows quantized by gguf.quants.quantize; `values` — those bytes dequantized by
      gguf.quants.dequantize. With INPUTS.f32 (M × COLUMNS float32): `product_quantized_inputs` — each input row
      quantized to Q8_0 and dequantized, times the dequantized weights transposed, in float64 (what llama.cpp's
      vec_dot computes, up to the order of the sums).
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

FORMATS = {"q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0}


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
    kind = {"q4_k": GGMLQuantizationType.Q4_K, "q6_k": GGMLQuantizationType.Q6_K}[arguments[0]]
    rows, columns = int(arguments[2]), int(arguments[3])
    packed = np.fromfile(arguments[1], dtype=np.uint8).reshape(rows, -1)
    values = quants.dequantize(packed, kind).reshape(rows, columns)
    m = int(arguments[5])
    inputs = np.fromfile(arguments[4], dtype="<f4").reshape(m, columns)
    raw, quantized_inputs = q8_K(inputs)
    print(json.dumps({"values": [float(v) for v in values.reshape(-1)], "input_blocks": raw.hex(),
                      "product_quantized_inputs": (quantized_inputs @ values.astype(np.float64).T).reshape(-1).tolist()}))


def main(arguments):
    if arguments[0] == "blocks":
        return blocks(arguments[1:])
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
