#!/usr/bin/env bash
# One request's decode beside llama.cpp (PyPI llama-cpp-python, built here with GGML_NATIVE) on the same
# checkpoint converted to GGUF bf16 by llama.cpp's own converter: 128-token random prompt, 128 greedy tokens;
# Tandem at tp 1 and tp 2 with one thread per rank, llama.cpp with 1 and 2 threads; medians of 3 runs.
#
#   benchmarks/compare_decode.sh      # (after `make build-release` and benchmarks/compare_engine.sh, whose vLLM
#                                     #  environment has the torch and transformers the converter needs)
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM=${TANDEM:-.build/release/tandem}
MODEL=${MODEL:-.build/models/small}
GGUF=${GGUF:-.peers/small-bf16.gguf}
if ! .peers/llama/bin/python -c "import llama_cpp" 2>/dev/null; then
  python3 -m venv .peers/llama
  CMAKE_ARGS="-DGGML_NATIVE=ON" .peers/llama/bin/pip install --quiet llama-cpp-python numpy
fi
if [ ! -d .peers/llama.cpp-src ]; then
  .peers/llama/bin/pip download --quiet --no-deps --no-binary :all: llama-cpp-python -d .peers/sdist
  mkdir -p .peers/llama.cpp-src && tar -xzf .peers/sdist/llama_cpp_python-*.tar.gz -C .peers/llama.cpp-src --strip-components=3 --wildcards '*/vendor/llama.cpp/*'
fi
[ -f "$GGUF" ] || .peers/vllm/bin/python benchmarks/convert_to_gguf.py .peers/llama.cpp-src "$MODEL" "$GGUF" >/dev/null 2>&1
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for n in 1 2; do
  "$TANDEM" bench generate --model "$MODEL" --tp "$n" --threads 1 --batch 1 --prompt-len 128 --gen-len 128 --json "$@" | grep '^{' \
    | sed "s/^{/{\"engine\":\"tandem\",\"threads\":$n,/" >> "$results"
  .peers/llama/bin/python benchmarks/compare_llamacpp.py --gguf "$GGUF" --threads "$n" >> "$results"
done
python3 - "$results" <<'PY'
import json, sys
runs = {(r["engine"], r["threads"]): r for r in map(json.loads, open(sys.argv[1]))}
print("| cores | Tandem decode tok/s | llama.cpp decode tok/s | Tandem ÷ llama.cpp | Tandem prefill tok/s | llama.cpp prefill tok/s |")
print("|---|---|---|---|---|---|")
for n in (1, 2):
    t, l = runs[("tandem", n)], runs[("llama.cpp", n)]
    print(f"| {n} (Tandem tp {n} × 1 thread) | {t['decode_tokens_per_s']:.1f} | {l['decode_tokens_per_s']:.1f} | "
          f"{t['decode_tokens_per_s'] / l['decode_tokens_per_s']:.2f}× | {t['prefill_tokens_per_s']:.1f} | {l['prefill_tokens_per_s']:.1f} |")
PY
