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
[ -f "$MODEL/model.safetensors" ] || "$TANDEM" make-model --out "$MODEL" --preset small
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
    return statistics.median(r[key] for r in runs if r["tensorParallelSize"] == tp)
one = {k: median(1, k) for k in runs[0]}
two = {k: median(2, k) for k in runs[0]}
bw1 = statistics.median(r["bandwidthOneStreamGBs"] for r in runs)
bw2 = statistics.median(r["bandwidthTwoStreamsGBs"] for r in runs)
scaling = bw2 / bw1
speedup = two["decodeTokensPerSecond"] / one["decodeTokensPerSecond"]
print(f"{len(runs) // 2} rounds, medians; weights {one['weightBytesPerStep'] / 1e6:.0f} MB/step")
print("| config | RSS/rank | prefill tok/s | prefill GFLOP/s | sgemm GFLOP/s | decode tok/s | ms/step | comm share | roofline tok/s | of roofline |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, r in (("tp 1 × 1 thread", one), ("tp 2 × 1 thread", two)):
    print(f"| {name} | {r['residentBytesPerRank'] / 1e6:.0f} MB | {r['prefillTokensPerSecond']:.1f} | {r['prefillGFLOPs']:.1f} | {r['sgemmGFLOPs']:.1f} | "
          f"{r['decodeTokensPerSecond']:.1f} | {r['decodeMillisecondsPerStep']:.2f} | {r['communicationShare'] * 100:.1f}% | "
          f"{r['rooflineTokensPerSecond']:.1f} | {r['rooflineFraction'] * 100:.0f}% |")
print(f"bandwidth: one stream {bw1:.1f} GB/s, two streams {bw2:.1f} GB/s → two-stream scaling {scaling:.2f}×")
print(f"decode speed-up tp 2 / tp 1: {speedup:.2f}× = {speedup / scaling * 100:.0f}% of the two-stream scaling")
PY
