#!/usr/bin/env python3
"""Tandem's quantizer against llama.cpp's, block for block (issue 14): the small preset's checkpoint quantized by
`tandem make-model --gguf TYPE` (the quantizer `--quantization TYPE` runs on load) and llama.cpp's bf16 GGUF of the
same checkpoint (.peers/small.gguf, its converter's) quantized by llama.cpp itself (`llama_model_quantize`, every
tensor in TYPE: `pure`, no importance matrix). Prints, per type, the share of blocks whose bytes are identical
and, where they differ, how far apart the two dequantized tensors are against the weights' own scale.

    benchmarks/compare_quantizer.py        # after `make build-release`; needs llama-cpp-python in .peers/llama
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType, quants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, ".build/release/tandem"))
LLAMA_PYTHON = os.path.join(ROOT, ".peers/llama/bin/python")
BF16_GGUF = os.environ.get("GGUF", os.path.join(ROOT, ".peers/small.gguf"))
PRESET = os.environ.get("PRESET", "small")
TYPES = {"q8_0": "Q8_0", "q4_0": "Q4_0", "q4_k": "Q4_K_M", "q6_k": "Q6_K"}  # llama.cpp's ftype for each (pure)


def llama_quantized(kind, directory):
    path = os.path.join(directory, f"llama-{kind}.gguf")
    script = f"""
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_{TYPES[kind]}
params.pure = True
params.nthread = 2
assert llama_cpp.llama_model_quantize({BF16_GGUF!r}.encode(), {path!r}.encode(), params) == 0
"""
    subprocess.run([LLAMA_PYTHON, "-c", script], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def main():
    with tempfile.TemporaryDirectory() as directory:
        print("| type | tensors compared | blocks | identical blocks | largest \\|Δ\\| ÷ tensor's max \\|w\\| where they differ |")
        print("|---|---|---|---|---|")
        for kind in TYPES:
            model = os.path.join(directory, kind)
            subprocess.run([TANDEM, "make-model", "--out", model, "--preset", PRESET, "--gguf", kind], check=True, stdout=subprocess.DEVNULL)
            ours = GGUFReader(os.path.join(model, f"model-{kind}.gguf"))
            theirs = {t.name: t for t in GGUFReader(llama_quantized(kind, directory)).tensors}
            qtype = GGMLQuantizationType[kind.upper()]
            block_bytes = quants.GGML_QUANT_SIZES[qtype][1]
            tensors = blocks = same = 0
            worst = 0.0
            for tensor in ours.tensors:
                other = theirs.get(tensor.name)
                if tensor.tensor_type != qtype or other is None or other.tensor_type != qtype:
                    continue
                a, b = np.asarray(tensor.data).reshape(-1, block_bytes), np.asarray(other.data).reshape(-1, block_bytes)
                equal = (a == b).all(axis=1)
                tensors, blocks, same = tensors + 1, blocks + len(equal), same + int(equal.sum())
                if not equal.all():
                    x, y = quants.dequantize(a, qtype), quants.dequantize(b, qtype)
                    worst = max(worst, float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)))
            print(f"| {kind} | {tensors} | {blocks} | {same} ({100 * same / max(blocks, 1):.4f} %) | {worst:.3g} |", flush=True)


if __name__ == "__main__":
    main()
