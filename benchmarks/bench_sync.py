#!/usr/bin/env python3
"""Activation sync (`TANDEM_ACTIVATION_SYNC`, issue 12) in one run: float32 against bfloat16 and int8 on the small
presets (Llama `small`, Mixtral `small-moe`) at tp 2 and pp 2, one thread per rank, ranks on this host.

- bytes: what rank 0 sends per decode step in its tensor-parallel all-reduces (`tandem bench generate`'s
  allreduce_bytes_per_step, counted by the group; pipeline sends are encoded the same way, not counted here), and
  single-request decode tokens/s — on this host's shared memory, where the encoding only costs time (no shaped
  links here: see docs/PERFORMANCE.md);
- accuracy: 64 prompts (pieces of the tokenizer corpus) × 64 greedy tokens with `tandem generate --json
  --logprobs 20`: the share of sequences identical to float32 sync's, the mean share of each sequence generated
  before its first divergence, and at the first generated token (same context for every mode) the change of the
  log-probabilities of float32's 20 likeliest tokens (max and mean |Δ|, nats).

    benchmarks/bench_sync.py        # after `make build-release`
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, ".build/release/tandem"))
MODELS = {"llama": os.path.join(ROOT, ".build/models/small"), "mixtral": os.path.join(ROOT, ".build/models/small-moe")}
PRESETS = {"llama": "small", "mixtral": "small-moe"}
MODES = ["float32", "bfloat16", "int8"]


def run(args, sync):
    env = dict(os.environ, TANDEM_ACTIVATION_SYNC=sync)
    print("$ TANDEM_ACTIVATION_SYNC=" + sync + " tandem " + " ".join(a if len(a) < 40 else a[:37] + "..." for a in args), file=sys.stderr, flush=True)
    output = subprocess.run([TANDEM, *args], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def prompts():
    with open(os.path.join(ROOT, "tools/reference/tokenizer_corpus.json")) as f:
        corpus = [text for text in json.load(f) if isinstance(text, str) and len(text.split()) >= 4]
    words = " ".join(corpus).split()
    return [" ".join(words[(i * 7) % max(len(words) - 12, 1):][:12]) for i in range(64)]


def main():
    texts = prompts()
    print("| model | layout | sync | all-reduce bytes/step (rank 0) | ÷ float32 | decode tok/s | sequences identical | tokens before first divergence | first token: max \\|Δ logprob\\| | mean \\|Δ logprob\\| |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for family, model in MODELS.items():
        if not os.path.isdir(model):
            subprocess.run([TANDEM, "make-model", "--out", model, "--preset", PRESETS[family]], check=True, stdout=subprocess.DEVNULL)
        for layout in (["--tp", "2"], ["--pp", "2"]):
            reference_bytes, reference = None, None
            for sync in MODES:
                bench = run(["bench", "generate", "--model", model, *layout, "--threads", "1", "--batch", "1", "--prompt-len", "128", "--gen-len", "64", "--json"], sync)
                arguments = ["generate", "--model", model, *layout, "--threads", "1", "--max-tokens", "64", "--temperature", "0", "--ignore-eos",
                             "--json", "--logprobs", "20"]
                for text in texts:
                    arguments += ["--prompt", text]
                outputs = run(arguments, sync)["outputs"]
                if sync == "float32":
                    reference_bytes, reference = bench["allreduce_bytes_per_step"], outputs
                identical = sum(a["token_ids"] == b["token_ids"] for a, b in zip(outputs, reference))
                prefix = []
                for a, b in zip(outputs, reference):
                    same = next((i for i, (x, y) in enumerate(zip(a["token_ids"], b["token_ids"])) if x != y), len(b["token_ids"]))
                    prefix.append(same / len(b["token_ids"]))
                deltas = []
                for a, b in zip(outputs, reference):
                    mine = {t["tokenID"]: t["logprob"] for t in a["logprobs"][0]["top"]}
                    for t in b["logprobs"][0]["top"]:
                        if t["tokenID"] in mine:
                            deltas.append(abs(mine[t["tokenID"]] - t["logprob"]))
                ratio = f"{reference_bytes / bench['allreduce_bytes_per_step']:.2f}×" if bench["allreduce_bytes_per_step"] else "–"
                print(f"| {family} | {' '.join(layout)} | {sync} | {bench['allreduce_bytes_per_step']} | {ratio} | {bench['decode_tokens_per_s']:.1f} | "
                      f"{identical}/64 | {100 * sum(prefix) / len(prefix):.1f} % | {max(deltas):.4f} | {sum(deltas) / len(deltas):.4f} |", flush=True)


if __name__ == "__main__":
    main()
