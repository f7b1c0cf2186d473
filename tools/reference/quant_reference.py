#!/usr/bin/env python3
"""Independent reference for Tandem's quantized weights: llama.cpp's own Python library, the `gguf` package, whose
quantizers are written to give the bytes of ggml's reference C quantizers.

  quant_reference.py FORMAT WEIGHTS.f32 ROWS COLUMNS [INPUTS.f32 M]
      FORMAT is q8_0 or q4_0; WEIGHTS.f32 holds ROWS × COLUMNS little-endian float32 values, row-major. Prints JSON:
      `bytes` (hex) — the rows quantized by gguf.quants.quantize; `values` — those bytes dequantized by
      gguf.quants.dequantize. With INPUTS.f32 (M × COLUMNS float32): `product_quantized_inputs` — each input row
      quantized to Q8_0 and dequantized, times the dequantized weights transposed, in float64 (what llama.cpp's
      vec_dot computes, up to the order of the sums).
"""
import json
import sys

import numpy as np
from gguf import quants, GGMLQuantizationType

FORMATS = {"q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0}


def main(arguments):
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
