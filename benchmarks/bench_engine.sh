#!/usr/bin/env bash
# The serving engine's targets (issue 9) on the `small` preset, bf16, tp 2 × 1 thread, in one run:
#   1. 64 prompts × (128 in, 128 out) output tokens/s against one request's decode tokens/s, and the driver's
#      share of a step;
#   2. 16 requests sharing a 1,024-token prefix, one after another: time to first token of requests 2–16 against
#      request 1's, and the outputs with the prefix cache against those without;
#   3. a prompt filling the context (2,046 + 2 tokens) against a 256-token one: prefill tokens/s (blocked attention);
#   4. resident memory with a KV pool of a given size.
#
#   benchmarks/bench_engine.sh        # (after `make build-release`)
#   EXTRA="--compute-dtype bfloat16" benchmarks/bench_engine.sh     # the same with bf16 matrix products
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM=${TANDEM:-.build/release/tandem}
MODEL=${MODEL:-.build/models/small}
TP=${TP:-2}
[ -f "$MODEL/model.safetensors" ] || "$TANDEM" make-model --out "$MODEL" --preset small --force
run() { echo "\$ tandem $*" >&2; "$TANDEM" "$@" | grep '^{'; }
# shellcheck disable=SC2206
common=(--model "$MODEL" --tp "$TP" --threads 1 ${EXTRA:-})
batch=$(run bench throughput "${common[@]}" --num-prompts 64 --input-len 128 --output-len 128 --json)
single=$(run bench generate "${common[@]}" --batch 1 --prompt-len 128 --gen-len 128 --repeats 3 --json)
cached=$(run bench throughput "${common[@]}" --num-prompts 16 --input-len 1040 --prefix-len 1024 --output-len 16 --sequential --json)
uncached=$(run bench throughput "${common[@]}" --num-prompts 16 --input-len 1040 --prefix-len 1024 --output-len 16 --sequential --no-prefix-caching --json)
long=$(run bench generate "${common[@]}" --prompt-len 2046 --gen-len 2 --repeats 3 --json)
short=$(run bench generate "${common[@]}" --prompt-len 256 --gen-len 2 --repeats 3 --json)
pool=$(run bench throughput "${common[@]}" --num-prompts 64 --input-len 128 --output-len 128 --kv-cache-memory 256M --json)
python3 - "$batch" "$single" "$cached" "$uncached" "$long" "$short" "$pool" <<'PY'
import json, sys
batch, single, cached, uncached, long, short, pool = (json.loads(a) for a in sys.argv[1:])
print("| measure | value | target |")
print("|---|---|---|")
print(f"| 64 × (128, 128): output tokens/s | {batch['output_tokens_per_s']:.1f} (total {batch['total_tokens_per_s']:.1f}, {batch['requests_per_s']:.2f} req/s) | |")
print(f"| one request (128, 128): decode tokens/s | {single['decode_tokens_per_s']:.1f} | |")
print(f"| batch output tokens/s ÷ one request's decode tokens/s | {batch['output_tokens_per_s'] / single['decode_tokens_per_s']:.2f}× | ≥ 4× |")
print(f"| driver (schedule + plan) at {batch['largest_batch']} running | {batch['driver_share'] * 100:.3f} % of the step | ≤ 5 % |")
ratio = cached['ttft_rest_max_s'] / cached['ttft_first_s']
print(f"| shared 1,024-token prefix: TTFT request 1 | {cached['ttft_first_s'] * 1000:.0f} ms (cache off: {uncached['ttft_first_s'] * 1000:.0f} ms) | |")
print(f"| TTFT requests 2–16, median / max | {cached['ttft_rest_median_s'] * 1000:.0f} / {cached['ttft_rest_max_s'] * 1000:.0f} ms = {ratio * 100:.1f} % of request 1 (cache off: {uncached['ttft_rest_median_s'] * 1000:.0f} ms) | ≤ 20 % |")
print(f"| outputs with and without the prefix cache | {'identical' if cached['output_digest'] == uncached['output_digest'] else 'DIFFERENT'} ({cached['prefix_cache_hit_tokens']} hit tokens) | identical |")
print(f"| prefill of 2,046 tokens vs 256 | {long['prefill_tokens_per_s']:.1f} vs {short['prefill_tokens_per_s']:.1f} tokens/s = {long['prefill_tokens_per_s'] / short['prefill_tokens_per_s'] * 100:.0f} % | ≥ 50 % |")
print(f"| KV pool of 256 MiB: blocks, resident/rank at the end | {pool['kv_blocks']} blocks = {pool['kv_cache_bytes_per_rank'] / 2**20:.0f} MiB; {pool['resident_bytes_per_rank'] / 1e6:.0f} MB (default pool: {batch['resident_bytes_per_rank'] / 1e6:.0f} MB), {pool['preemptions']} preemptions | pool = its size |")
PY
