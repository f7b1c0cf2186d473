#!/usr/bin/env python3
"""Quantized weights (issue 14) side by side in one run, on the `small` preset, one thread per rank:

- single-request decode (128-token random prompt, 128 greedy tokens, `tandem bench generate`): the checkpoint's
  bf16 weights, --quantization q8_0, q4_0 and q4_k, each against the memory-bandwidth roofline for its bytes; q4_0 at
  tp 2 as well; and, when llama-cpp-python is installed in .peers/llama (benchmarks/compare_decode.sh installs it),
  llama.cpp on the same weights: the bf16 GGUF its converter wrote (.peers/small.gguf) quantized by llama.cpp
  itself to Q8_0, Q4_0 and Q4_K with every tensor in the one type (`pure`, so both engines read the same blocks —
  Tandem's quantizer writes ggml's bytes, benchmarks/compare_quantizer.py checks it), at 1 and 2 threads;
- the same single-request decode with Tandem reading llama.cpp's own Q8_0, Q4_0 and Q4_K_M files (`--model
  FILE.gguf`), so both engines read one file;
- batched throughput, 64 prompts × (128 in, 64 out) (`tandem bench throughput`): bf16 against each format;
- accuracy (`tandem bench accuracy`, 64 windows × 64 tokens of text): KL divergence against the bf16 weights.

    benchmarks/bench_quantized.py        # after `make build-release` (make bench-quantized does both)
    MODEL=DIR GGUF=DIR/model-bf16.gguf GEN=64 DECODE_ONLY=1 benchmarks/bench_quantized.py   # another model (make-model
                                         # --gguf bf16 writes its GGUF), decode only
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, ".build/release/tandem"))
MODEL = os.environ.get("MODEL", os.path.join(ROOT, ".build/models/small"))
PEERS = os.path.join(ROOT, ".peers")
LLAMA_PYTHON = os.path.join(PEERS, "llama/bin/python")
BF16_GGUF = os.environ.get("GGUF", os.path.join(PEERS, "small.gguf"))
GEN = os.environ.get("GEN", "128")


def tandem(*args):
    print("$ tandem " + " ".join(args), file=sys.stderr, flush=True)
    output = subprocess.run([TANDEM, *args], check=True, capture_output=True, text=True).stdout
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def llama_cpp_available():
    return os.path.exists(LLAMA_PYTHON) and subprocess.run([LLAMA_PYTHON, "-c", "import llama_cpp"], capture_output=True).returncode == 0


def quantized_gguf(kind):
    """The bf16 GGUF's name with -KIND (.peers/small-KIND.gguf), quantized from it by llama.cpp: every tensor KIND
    (`pure`; q4_k as llama.cpp's Q4_K_M type made pure), or for a mix such as q4_k_m llama.cpp's own choice per
    tensor."""
    path = os.path.splitext(BF16_GGUF)[0] + f"-{kind}.gguf"
    if not os.path.exists(path):
        script = f"""
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_{"Q4_K_M" if kind == "q4_k" else kind.upper()}
params.pure = {not kind.endswith("_m")}
params.nthread = 2
assert llama_cpp.llama_model_quantize({BF16_GGUF!r}.encode(), {path!r}.encode(), params) == 0
"""
        subprocess.run([LLAMA_PYTHON, "-c", script], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def llama_decode(gguf, threads):
    args = [LLAMA_PYTHON, os.path.join(ROOT, "benchmarks/compare_llamacpp.py"), "--gguf", gguf, "--threads", str(threads), "--prompt-len", "128", "--gen-len", GEN]
    print("$ " + " ".join(args), file=sys.stderr, flush=True)
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def main():
    if not os.path.isdir(MODEL):
        subprocess.run([TANDEM, "make-model", "--out", MODEL, "--preset", os.environ.get("PRESET", "small"), "--gguf", "bf16"], check=True)
    formats = [("bf16", []), ("q8_0", ["--quantization", "q8_0"]), ("q4_0", ["--quantization", "q4_0"]), ("q4_k", ["--quantization", "q4_k"])]
    llama = llama_cpp_available() and os.path.exists(BF16_GGUF)
    print("| weights | Tandem tp 1: decode tok/s (roofline share) | llama.cpp 1 thread | Tandem ÷ llama.cpp | Tandem tp 2 | llama.cpp 2 threads | Tandem ÷ llama.cpp | weight MB |")
    print("|---|---|---|---|---|---|---|---|")
    decode = {}
    for name, flags in formats:
        one = tandem("bench", "generate", "--model", MODEL, "--threads", "1", "--batch", "1", "--prompt-len", "128", "--gen-len", GEN, "--json", *flags)
        try:
            two = tandem("bench", "generate", "--model", MODEL, "--tp", "2", "--threads", "1", "--batch", "1", "--prompt-len", "128", "--gen-len", GEN, "--json", *flags)
        except subprocess.CalledProcessError:  # a split leaving rows that are not whole 32-value blocks is refused (named on stderr)
            two = None
        decode[name] = one["decode_tokens_per_s"]
        peer1 = peer2 = None
        if llama:
            gguf = BF16_GGUF if name == "bf16" else quantized_gguf(name)
            peer1, peer2 = llama_decode(gguf, 1), llama_decode(gguf, 2)
        def cell(run):
            return f"{run['decode_tokens_per_s']:.1f}" if run else "–"
        def ratio(mine, theirs):
            return f"{mine['decode_tokens_per_s'] / theirs['decode_tokens_per_s']:.2f}×" if mine and theirs else "–"
        roofline = one["decode_tokens_per_s"] / one["roofline_tokens_per_s"]
        print(f"| {name} | {one['decode_tokens_per_s']:.1f} ({roofline * 100:.0f} %) | {cell(peer1)} | {ratio(one, peer1)} | "
              f"{cell(two) if two else 'refused'} | {cell(peer2)} | {ratio(two, peer2)} | {one['weight_bytes_per_rank'] / 1e6:.0f} |")
    print(f"\nbf16 → q8_0 decode speed-up {decode['q8_0'] / decode['bf16']:.2f}×, bf16 → q4_0 {decode['q4_0'] / decode['bf16']:.2f}×, "
          f"bf16 → q4_k {decode['q4_k'] / decode['bf16']:.2f}×")
    if llama:
        print("\n| llama.cpp's file | Tandem tp 1 on the file | llama.cpp 1 thread | ratio | Tandem tp 2 | llama.cpp 2 threads | ratio |")
        print("|---|---|---|---|---|---|---|")
        for name in ["q8_0", "q4_0", "q4_k_m"]:
            gguf = quantized_gguf(name)
            one = tandem("bench", "generate", "--model", gguf, "--threads", "1", "--batch", "1", "--prompt-len", "128", "--gen-len", GEN, "--json")
            peer1, peer2 = llama_decode(gguf, 1), llama_decode(gguf, 2)
            try:
                two = tandem("bench", "generate", "--model", gguf, "--tp", "2", "--threads", "1", "--batch", "1", "--prompt-len", "128", "--gen-len", GEN, "--json")
                two_cells = f"{two['decode_tokens_per_s']:.1f} | {peer2['decode_tokens_per_s']:.1f} | {two['decode_tokens_per_s'] / peer2['decode_tokens_per_s']:.2f}×"
            except subprocess.CalledProcessError:  # a split leaving rows that are not whole 32-value blocks is refused (named on stderr)
                two_cells = f"refused | {peer2['decode_tokens_per_s']:.1f} | –"
            print(f"| {os.path.basename(gguf)} | {one['decode_tokens_per_s']:.1f} | {peer1['decode_tokens_per_s']:.1f} | "
                  f"{one['decode_tokens_per_s'] / peer1['decode_tokens_per_s']:.2f}× | {two_cells} |")
    if os.environ.get("DECODE_ONLY"):
        return
    print("\n| weights | 64 prompts × (128 in, 64 out): output tokens/s | ÷ bf16 |")
    print("|---|---|---|")
    base = None
    for name, flags in formats:
        run = tandem("bench", "throughput", "--model", MODEL, "--threads", "1", "--num-prompts", "64", "--input-len", "128", "--output-len", "64", "--json", *flags)
        base = base or run["output_tokens_per_s"]
        print(f"| {name} | {run['output_tokens_per_s']:.1f} | {run['output_tokens_per_s'] / base:.2f} |")
    print("\n| weights | mean KL (nats) | median | 99th percentile | same top token | perplexity ratio |")
    print("|---|---|---|---|---|---|")
    for name in ["q8_0", "q4_0", "q4_k"]:
        run = tandem("bench", "accuracy", "--model", MODEL, "--quantization", name, "--json")
        print(f"| {name} | {run['mean_kl']:.6f} | {run['median_kl']:.6f} | {run['p99_kl']:.6f} | {run['same_top_rate'] * 100:.2f} % | "
              f"{run['perplexity_quantized'] / run['perplexity_reference']:.5f} |")


if __name__ == "__main__":
    main()
