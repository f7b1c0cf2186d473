#!/usr/bin/env bash
# Decode and prefill speed of the `small` preset at tp 1 and tp 2 (one thread per rank), side by side in one
# run, against this machine's memory bandwidth measured by the same runs (see `tandem bench generate --help`).
#
#   ROUNDS=3 benchmarks/bench_generate.sh        # (after `make build-release`)
#
# Each round runs tp 1 then tp 2; the table gives medians over the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM=${TANDEM:-.build/release/tandem}
MODEL=${MODEL:-.build/models/small}
ROUNDS=${ROUNDS:-3}
ARGS=${ARGS:---threads 1 --batch 1 --prompt-len 128 --gen-len 64 --repeats 3}
[ -f "$MODEL/model.safetensors" ] || "$TANDEM" make-model --out "$MODEL" --preset small --force
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$ROUNDS"); do
  for tp in 1 2; do
    # shellcheck disable=SC2086
    "$TANDEM" bench generate --model "$MODEL" --tp "$tp" $ARGS --json | grep '^{' >> "$results"
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def median(tp, key):
    return statistics.median(r[key] for r in runs if r["tp"] == tp)
one = {k: median(1, k) for k in runs[0]}
two = {k: median(2, k) for k in runs[0]}
bw1 = statistics.median(r["bandwidth_one_stream_gbs"] for r in runs)
bw2 = statistics.median(r["bandwidth_two_streams_gbs"] for r in runs)
scaling = bw2 / bw1
speedup = two["decode_tokens_per_s"] / one["decode_tokens_per_s"]
print(f"{len(runs) // 2} rounds, medians; weights {one['weight_bytes_per_step'] / 1e6:.0f} MB/step")
print("| config | RSS/rank | prefill tok/s | prefill GFLOP/s | sgemm GFLOP/s | decode tok/s | ms/step | comm share | roofline tok/s | of roofline |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, r in (("tp 1 × 1 thread", one), ("tp 2 × 1 thread", two)):
    print(f"| {name} | {r['resident_bytes_per_rank'] / 1e6:.0f} MB | {r['prefill_tokens_per_s']:.1f} | {r['prefill_gflops']:.1f} | {r['sgemm_gflops']:.1f} | "
          f"{r['decode_tokens_per_s']:.1f} | {r['decode_ms_per_step']:.2f} | {r['communication_share'] * 100:.1f}% | "
          f"{r['roofline_tokens_per_s']:.1f} | {r['roofline_fraction'] * 100:.0f}% |")
print(f"bandwidth: one stream {bw1:.1f} GB/s, two streams {bw2:.1f} GB/s → two-stream scaling {scaling:.2f}×")
print(f"decode speed-up tp 2 / tp 1: {speedup:.2f}× = {speedup / scaling * 100:.0f}% of the two-stream scaling")
PY
