#!/usr/bin/env python3
"""Tandem against llama.cpp on the same GGUF files (issue 14): tokenization and greedy tokens.

For each file (default: the small preset as llama.cpp's converter wrote it in BF16, and llama.cpp's own pure
Q8_0 and Q4_0 quantizations of it and its Q4_K_M mix — benchmarks/bench_quantized.py makes them):
- tokenization: every text of tools/reference/tokenizer_corpus.json that a command line can carry (no NUL, not
  empty), tokenized by `tandem generate --model FILE` (its prompt_token_ids) and by llama.cpp
  (llama_tokenize with the file's special-token rules, special tokens parsed);
- greedy decoding: the first PROMPTS texts × TOKENS tokens, both engines from Tandem's prompt ids, one thread,
  KV cache in f16 as llama.cpp keeps it; at the first token where they part, both engines' two most likely
  tokens and log-probabilities, and those of the float64 numpy reference (tools/reference/llama_reference.py
  reading the same file, with REFERENCE_MODEL's config.json; default .build/models/small), to show whether it
  is a near tie and which engine the reference sides with;
- the spread behind such ties: at each prompt's first generated token, the mean |Δ log p| over the reference's
  five most likely tokens between each pair of Tandem, llama.cpp and the reference;
- accuracy as llama.cpp's perplexity tool measures it (`--kl-divergence`): each quantized file against the first
  (unquantized) one over the same 64 windows × 64 tokens of text, each engine against its own run of the
  unquantized file — mean KL, same top token, perplexity ratio (`tandem bench accuracy --reference`, and llama.cpp
  through llama-cpp-python on the windows Tandem reports).

Run with the Python that has llama-cpp-python (benchmarks/compare_decode.sh installs it in .peers/llama):

    .peers/llama/bin/python benchmarks/compare_gguf.py [FILE.gguf ...]      # make compare-gguf
"""
import json
import os
import subprocess
import sys

import numpy as np
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, ".build/release/tandem"))
PROMPTS = int(os.environ.get("PROMPTS", "16"))
REFERENCE_MODEL = os.environ.get("REFERENCE_MODEL", os.path.join(ROOT, ".build/models/small"))
TOKENS = int(os.environ.get("TOKENS", "32"))
CORPUS = json.load(open(os.path.join(ROOT, "tools/reference/tokenizer_corpus.json")))
TEXTS = [text for text in CORPUS if text and "\x00" not in text]


def tandem(path, texts, tokens, logprobs):
    args = [TANDEM, "generate", "--model", path, "--threads", "1", "--temperature", "0", "--max-tokens", str(tokens), "--ignore-eos",
            "--kv-cache-dtype", "float16", "--json"] + (["--logprobs", "20"] if logprobs else [])
    for text in texts:
        args += ["--prompt", text]
    output = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(output)["outputs"]


def log_softmax(row):
    row = np.asarray(row, dtype=np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


def greedy(llm, prompt, count):
    """llama.cpp's greedy tokens from `prompt` ids, with each step's log-probabilities."""
    llm.reset()
    llm.eval(prompt)
    tokens, steps = [], []
    for _ in range(count):
        logprobs = log_softmax(llm.scores[llm.n_tokens - 1])
        token = int(np.argmax(logprobs))
        tokens.append(token)
        steps.append(logprobs)
        llm.eval([token])
    return tokens, steps


def reference(path, ids):
    """The numpy reference's log-probabilities after `ids` (system python3, which has the gguf package)."""
    args = ["python3", os.path.join(ROOT, "tools/reference/llama_reference.py"), "--model", REFERENCE_MODEL, "--gguf", path,
            "--tokens", ",".join(map(str, ids))]
    return log_softmax(json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)["logits"][-1])


def top2(logprobs):
    order = np.argsort(-logprobs, kind="stable")[:2]
    return [(int(i), float(logprobs[i])) for i in order]


def compare(path):
    print(f"\n## {os.path.basename(path)}\n")
    llm = Llama(model_path=path, n_ctx=1024, n_threads=1, n_threads_batch=1, logits_all=True, verbose=False)
    ours = tandem(path, TEXTS, 1, False)
    same = 0
    for text, output in zip(TEXTS, ours):
        theirs = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if theirs == output["prompt_token_ids"]:
            same += 1
        else:
            print(f"tokenization differs for {text[:40]!r}: Tandem {output['prompt_token_ids'][:12]}…, llama.cpp {theirs[:12]}…")
    print(f"tokenization: {same} of {len(TEXTS)} texts give the same ids\n")
    prompts = TEXTS[:PROMPTS]
    ours = tandem(path, prompts, TOKENS, True)
    print("| prompt | tokens equal | first difference: Tandem top 2 (log p) | llama.cpp top 2 (log p) | numpy reference top 2 (log p) |")
    print("|---|---|---|---|---|")
    whole = 0
    for text, output in zip(prompts, ours):
        theirs, steps = greedy(llm, output["prompt_token_ids"], TOKENS)
        mine = output["token_ids"]
        equal = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), len(mine))
        if equal == len(mine):
            whole += 1
            print(f"| {text[:28]!r} | {equal} / {TOKENS} | – | – | – |")
            continue
        candidates = output["logprobs"][equal]["top"][:2]
        ours_top = ", ".join(f"{c['tokenID']} ({c['logprob']:.4f})" for c in candidates)
        theirs_top = ", ".join(f"{t} ({p:.4f})" for t, p in top2(steps[equal]))
        reference_top = ", ".join(f"{t} ({p:.4f})" for t, p in top2(reference(path, output["prompt_token_ids"] + mine[:equal])))
        print(f"| {text[:28]!r} | {equal} / {TOKENS} | {ours_top} | {theirs_top} | {reference_top} |")
    print(f"\n{whole} of {len(prompts)} prompts: all {TOKENS} greedy tokens equal")
    # The first generated token of every prompt: how far apart the three are, token by token.
    spreads = {"Tandem – reference": [], "llama.cpp – reference": [], "Tandem – llama.cpp": []}
    firsts = tandem(path, prompts, 1, True)
    for output in firsts:
        ids = output["prompt_token_ids"]
        exact = reference(path, ids)
        _, steps = greedy(llm, ids, 1)
        ours = {c["tokenID"]: c["logprob"] for c in output["logprobs"][0]["top"]}
        for token in np.argsort(-exact, kind="stable")[:5]:
            token = int(token)
            if token not in ours:
                continue
            spreads["Tandem – reference"].append(abs(ours[token] - exact[token]))
            spreads["llama.cpp – reference"].append(abs(steps[0][token] - exact[token]))
            spreads["Tandem – llama.cpp"].append(abs(ours[token] - steps[0][token]))
    print("\n| first generated token, reference's top 5 | mean abs(Δ log p) | max |")
    print("|---|---|---|")
    for name, values in spreads.items():
        print(f"| {name} | {np.mean(values):.4f} | {np.max(values):.4f} |")


def llama_accuracy(base_path, quantized_path, windows):
    """KL(base ‖ quantized) at every position of `windows` (each fed whole; position i predicts token i + 1), as
    llama-perplexity --kl-divergence computes it, with the same-top rate and both perplexities."""
    base = Llama(model_path=base_path, n_ctx=256, n_threads=1, n_threads_batch=1, logits_all=True, verbose=False)
    quantized = Llama(model_path=quantized_path, n_ctx=256, n_threads=1, n_threads_batch=1, logits_all=True, verbose=False)
    divergences, same, nll_base, nll_quantized = [], 0, 0.0, 0.0
    for window in windows:
        fed = window[:-1]
        rows = []
        for llm in (base, quantized):
            llm.reset()
            llm.eval(fed)
            rows.append([log_softmax(llm.scores[i]) for i in range(len(fed))])
        for position, (p, q) in enumerate(zip(*rows)):
            divergences.append(max(float(np.sum(np.exp(p) * (p - q))), 0.0))
            same += int(np.argmax(p) == np.argmax(q))
            nll_base -= p[window[position + 1]]
            nll_quantized -= q[window[position + 1]]
    count = len(divergences)
    return {"mean_kl": float(np.mean(divergences)), "median_kl": float(np.median(divergences)), "same_top_rate": same / count,
            "perplexity_ratio": float(np.exp((nll_quantized - nll_base) / count))}


def accuracy(base_path, quantized_path):
    args = [TANDEM, "bench", "accuracy", "--model", quantized_path, "--reference", base_path, "--json"]
    output = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    ours = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
    theirs = llama_accuracy(base_path, quantized_path, ours["windows"])
    name = os.path.basename(quantized_path)
    print(f"| {name} | Tandem | {ours['mean_kl']:.6f} | {ours['median_kl']:.6f} | {ours['same_top_rate'] * 100:.2f} % | "
          f"{ours['perplexity_quantized'] / ours['perplexity_reference']:.5f} |")
    print(f"| {name} | llama.cpp | {theirs['mean_kl']:.6f} | {theirs['median_kl']:.6f} | {theirs['same_top_rate'] * 100:.2f} % | "
          f"{theirs['perplexity_ratio']:.5f} |")


def main():
    names = ("small.gguf", "small-q8_0.gguf", "small-q4_0.gguf", "small-q4_k_m.gguf")
    files = sys.argv[1:] or [os.path.join(ROOT, ".peers", name) for name in names]
    for path in files:
        compare(path)
    print(f"\n## Accuracy against {os.path.basename(files[0])} (64 windows × 64 tokens)\n")
    print("| file | engine | mean KL (nats) | median | same top token | perplexity ratio |")
    print("|---|---|---|---|---|---|")
    for path in files[1:]:
        accuracy(files[0], path)


if __name__ == "__main__":
    main()
