#!/usr/bin/env python3
"""Every tp × pp × dp layout of 1, 2 and 4 ranks side by side in one run (issue 11's table): `tandem bench throughput`
with 64 random-token prompts × (128 in, 64 out), and a single request (1 × (128 in, 256 out), its 128-token
prefill included), 1 thread per rank, on the `small` preset (12 layers). Prints a markdown table, each pipeline
stage's idle share (measured by the engine over the whole run, ramp-up and ramp-down included), and the pp 2 ÷
tp 2 ratio the issue targets (≥ 0.9), and dp 2 against dp 1 × this machine's two-stream memory-bandwidth scaling
(measured in the same run by `tandem bench generate`; target ≥ 0.9). Then tp 2 and pp 2 once more at saturation — 64 × (128 in, 512 out), so
the ramps are a small part — for the bubble target (≤ 10 %). Last, Mixtral (`small-moe`: 8 experts of width 704
per layer, 2 per token) at tp 2 with every expert split against ep 2 (whole experts per rank) and dp 2 with the
experts on each replica against dp 2 with the experts spread over both replicas (all-to-all and all-gather
dispatch, with the bytes the dispatch moved per token and MoE layer beside the all-to-all analytic count), the
same runs.

On a 2-core machine the 4-rank layouts run 4 ranks on 2 cores: compare them with each other, not with 2 ranks.

    benchmarks/bench_layouts.py            # after `make build-release` (make bench-layouts does both)
    MODEL=DIR LAYOUTS="1x1 1x2 2x1 1x1x2" benchmarks/bench_layouts.py     # tp x pp [x dp]
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, ".build/release/tandem"))
MODEL = os.environ.get("MODEL", os.path.join(ROOT, ".build/models/small"))
MOE_MODEL = os.environ.get("MOE_MODEL", os.path.join(ROOT, ".build/models/small-moe"))
LAYOUTS = [tuple(int(x) for x in (item + "x1").split("x")[:3]) for item in
           os.environ.get("LAYOUTS", "1x1 2x1 1x2 1x1x2 4x1 2x2 1x4 2x1x2 1x2x2 1x1x4").split()]
MOE_LAYOUTS = os.environ.get("MOE_LAYOUTS", "tp2 ep2 dp2 epdp2 epdp2ag").split()


def throughput(tp, pp, prompts, output=64, model=MODEL, extra=(), dp=1):
    args = ["bench", "throughput", "--model", model, "--tp", str(tp), "--pp", str(pp), "--dp", str(dp), "--threads", "1",
            "--num-prompts", str(prompts), "--input-len", "128", "--output-len", str(output), "--json", *extra]
    print("$ tandem " + " ".join(args), file=sys.stderr, flush=True)
    output = subprocess.run([TANDEM, *args], check=True, capture_output=True, text=True).stdout
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def main():
    for path, preset in [(MODEL, "small"), (MOE_MODEL, "small-moe")]:
        if not os.path.isdir(path):
            subprocess.run([TANDEM, "make-model", "--out", path, "--preset", preset], check=True)
    rows = []
    for tp, pp, dp in LAYOUTS:
        batch = throughput(tp, pp, 64, dp=dp)
        single = throughput(tp, pp, 1, output=256, dp=dp)
        rows.append((tp, pp, dp, batch, single))
    print("| layout | ranks | 64 prompts: output tokens/s | stage idle share | driver waits for logits | tokens by replica | 1 request: output tokens/s |")
    print("|---|---|---|---|---|---|---|")
    for tp, pp, dp, batch, single in rows:
        idle = ", ".join(f"{x * 100:.1f} %" for x in batch["stage_idle_fractions"])
        wait = f"{batch['driver_logits_wait_share'] * 100:.1f} %" if pp > 1 else "–"
        replicas = " / ".join(str(x) for x in batch["replica_generated_tokens"]) if dp > 1 else "–"
        print(f"| tp {tp} × pp {pp} × dp {dp} | {tp * pp * dp} | {batch['output_tokens_per_s']:.1f} | {idle} | {wait} | {replicas} | "
              f"{single['output_tokens_per_s']:.1f} |")
    by_layout = {(tp, pp, dp): batch for tp, pp, dp, batch, _ in rows}
    if (1, 1, 1) in by_layout and (1, 1, 2) in by_layout:
        args = ["bench", "generate", "--model", MODEL, "--threads", "1", "--batch", "1", "--prompt-len", "8", "--gen-len", "8",
                "--repeats", "1", "--json"]
        print("$ tandem " + " ".join(args), file=sys.stderr, flush=True)
        machine = json.loads(subprocess.run([TANDEM, *args], check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        scaling = machine["bandwidth_two_streams_gbs"] / machine["bandwidth_one_stream_gbs"]
        dp1, dp2 = by_layout[(1, 1, 1)]["output_tokens_per_s"], by_layout[(1, 1, 2)]["output_tokens_per_s"]
        print(f"\ndp 2 ÷ (dp 1 × two-stream bandwidth scaling {scaling:.3f} = {machine['bandwidth_two_streams_gbs']:.1f} ÷ "
              f"{machine['bandwidth_one_stream_gbs']:.1f} GB/s) at 64 prompts: {dp2:.1f} ÷ {dp1 * scaling:.1f} = {dp2 / (dp1 * scaling):.3f} (target ≥ 0.9)")
    if (2, 1, 1) in by_layout and (1, 2, 1) in by_layout:
        ratio = by_layout[(1, 2, 1)]["output_tokens_per_s"] / by_layout[(2, 1, 1)]["output_tokens_per_s"]
        bubble = max(by_layout[(1, 2, 1)]["stage_idle_fractions"])
        print(f"\npp 2 ÷ tp 2 at 64 prompts: {ratio:.3f} (target ≥ 0.9); largest stage idle share at pp 2: {bubble * 100:.1f} %")
        if os.environ.get("SATURATION", "1") == "1":
            tp2 = throughput(2, 1, 64, output=512)
            pp2 = throughput(1, 2, 64, output=512)
            idle = ", ".join(f"{x * 100:.1f} %" for x in pp2["stage_idle_fractions"])
            print(f"saturation, 64 × (128 in, 512 out): tp 2 {tp2['output_tokens_per_s']:.1f}, pp 2 {pp2['output_tokens_per_s']:.1f} output tokens/s "
                  f"(ratio {pp2['output_tokens_per_s'] / tp2['output_tokens_per_s']:.3f}); pp 2 stage idle {idle} (target ≤ 10 %), "
                  f"driver waits for logits {pp2['driver_logits_wait_share'] * 100:.1f} %")

    if os.environ.get("MOE", "1") == "1":
        print("\n| Mixtral small-moe | ranks | 64 prompts: output tokens/s | 1 request: output tokens/s | pairs off-rank | bytes moved per token and layer (all-to-all analytic) |")
        print("|---|---|---|---|---|---|")
        moe = {
            "tp2": ("tp 2, every expert split", 2, 1, ()),
            "ep2": ("ep 2, whole experts (linear)", 2, 1, ("--enable-expert-parallel",)),
            "dp2": ("dp 2, every expert on each replica", 1, 2, ()),
            "tp2dp2": ("tp 2 × dp 2, every expert split", 2, 2, ()),
            "epdp2": ("dp 2, experts spread over both replicas, all-to-all", 1, 2, ("--enable-expert-parallel",)),
            "epdp2ag": ("dp 2, experts spread over both replicas, all-gather", 1, 2, ("--enable-expert-parallel", "--expert-dispatch", "all_gather")),
            "ep2dp2": ("tp 2 × dp 2, experts spread over all 4 ranks, all-to-all", 2, 2, ("--enable-expert-parallel",)),
        }
        for key in MOE_LAYOUTS:
            label, tp, dp, extra = moe[key]
            batch = throughput(tp, 1, 64, model=MOE_MODEL, extra=extra, dp=dp)
            single = throughput(tp, 1, 1, output=256, model=MOE_MODEL, extra=extra, dp=dp)
            traffic = "– | –"
            if batch.get("expert_dispatch"):
                traffic = (f"{batch['expert_off_rank_share'] * 100:.1f} % | {batch['expert_hidden_bytes_per_token']:.0f} "
                           f"({batch['expert_analytic_bytes_per_token']:.0f}) + {batch['expert_metadata_bytes_per_token']:.1f} other")
            print(f"| {label} | {tp * dp} | {batch['output_tokens_per_s']:.1f} | {single['output_tokens_per_s']:.1f} | {traffic} |")


if __name__ == "__main__":
    main()
