#!/usr/bin/env python3
"""Every tp × pp layout of 1, 2 and 4 ranks side by side in one run (issue 11's table): `tandem bench throughput`
with 64 random-token prompts × (128 in, 64 out), and a single request (1 × (128 in, 256 out), its 128-token
prefill included), 1 thread per rank, on the `small` preset (12 layers). Prints a markdown table, each pipeline
stage's idle share (measured by the engine over the whole run, ramp-up and ramp-down included), and the pp 2 ÷
tp 2 ratio the issue targets (≥ 0.9). Then tp 2 and pp 2 once more at saturation — 64 × (128 in, 512 out), so
the ramps are a small part — for the bubble target (≤ 10 %). Last, Mixtral (`small-moe`: 8 experts of width 704
per layer, 2 per token) at tp 2 with every expert split against ep 2 (whole experts per rank), the same runs.

On a 2-core machine the 4-rank layouts run 4 ranks on 2 cores: compare them with each other, not with 2 ranks.

    benchmarks/bench_layouts.py            # after `make build-release` (make bench-layouts does both)
    MODEL=DIR LAYOUTS="1x1 1x2 2x1" benchmarks/bench_layouts.py     # tp x pp pairs
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, ".build/release/tandem"))
MODEL = os.environ.get("MODEL", os.path.join(ROOT, ".build/models/small"))
MOE_MODEL = os.environ.get("MOE_MODEL", os.path.join(ROOT, ".build/models/small-moe"))
LAYOUTS = [tuple(int(x) for x in pair.split("x")) for pair in os.environ.get("LAYOUTS", "1x1 2x1 1x2 4x1 2x2 1x4").split()]


def throughput(tp, pp, prompts, output=64, model=MODEL, extra=()):
    args = ["bench", "throughput", "--model", model, "--tp", str(tp), "--pp", str(pp), "--threads", "1",
            "--num-prompts", str(prompts), "--input-len", "128", "--output-len", str(output), "--json", *extra]
    print("$ tandem " + " ".join(args), file=sys.stderr, flush=True)
    output = subprocess.run([TANDEM, *args], check=True, capture_output=True, text=True).stdout
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def main():
    for path, preset in [(MODEL, "small"), (MOE_MODEL, "small-moe")]:
        if not os.path.isdir(path):
            subprocess.run([TANDEM, "make-model", "--out", path, "--preset", preset], check=True)
    rows = []
    for tp, pp in LAYOUTS:
        batch = throughput(tp, pp, 64)
        single = throughput(tp, pp, 1, output=256)
        rows.append((tp, pp, batch, single))
    print("| layout | ranks | 64 prompts: output tokens/s | stage idle share | driver waits for logits | 1 request: output tokens/s |")
    print("|---|---|---|---|---|---|")
    for tp, pp, batch, single in rows:
        idle = ", ".join(f"{x * 100:.1f} %" for x in batch["stage_idle_fractions"])
        wait = f"{batch['driver_logits_wait_share'] * 100:.1f} %" if pp > 1 else "–"
        print(f"| tp {tp} × pp {pp} | {tp * pp} | {batch['output_tokens_per_s']:.1f} | {idle} | {wait} | {single['output_tokens_per_s']:.1f} |")
    by_layout = {(tp, pp): batch for tp, pp, batch, _ in rows}
    if (2, 1) in by_layout and (1, 2) in by_layout:
        ratio = by_layout[(1, 2)]["output_tokens_per_s"] / by_layout[(2, 1)]["output_tokens_per_s"]
        bubble = max(by_layout[(1, 2)]["stage_idle_fractions"])
        print(f"\npp 2 ÷ tp 2 at 64 prompts: {ratio:.3f} (target ≥ 0.9); largest stage idle share at pp 2: {bubble * 100:.1f} %")
        if os.environ.get("SATURATION", "1") == "1":
            tp2 = throughput(2, 1, 64, output=512)
            pp2 = throughput(1, 2, 64, output=512)
            idle = ", ".join(f"{x * 100:.1f} %" for x in pp2["stage_idle_fractions"])
            print(f"saturation, 64 × (128 in, 512 out): tp 2 {tp2['output_tokens_per_s']:.1f}, pp 2 {pp2['output_tokens_per_s']:.1f} output tokens/s "
                  f"(ratio {pp2['output_tokens_per_s'] / tp2['output_tokens_per_s']:.3f}); pp 2 stage idle {idle} (target ≤ 10 %), "
                  f"driver waits for logits {pp2['driver_logits_wait_share'] * 100:.1f} %")

    if os.environ.get("MOE", "1") == "1":
        print("\n| Mixtral small-moe, 2 ranks | 64 prompts: output tokens/s | 1 request: output tokens/s |")
        print("|---|---|---|")
        for label, extra in [("tp 2, every expert split", ()), ("ep 2, whole experts (linear)", ("--enable-expert-parallel",))]:
            batch = throughput(2, 1, 64, model=MOE_MODEL, extra=extra)
            single = throughput(2, 1, 1, output=256, model=MOE_MODEL, extra=extra)
            print(f"| {label} | {batch['output_tokens_per_s']:.1f} | {single['output_tokens_per_s']:.1f} |")


if __name__ == "__main__":
    main()
