#!/usr/bin/env python3
"""One request's decode speed in llama.cpp (through llama-cpp-python) on a GGUF file: a random-token prompt,
then greedy tokens one at a time. Prints one JSON line with the keys `tandem bench generate --json` uses.

    .peers/llama/bin/python benchmarks/compare_llamacpp.py --gguf small.gguf --threads 1 --prompt-len 128 --gen-len 128
"""
import argparse, json, random, time

import numpy as np
from llama_cpp import Llama


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--gen-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    llm = Llama(model_path=args.gguf, n_ctx=args.prompt_len + args.gen_len + 8, n_threads=args.threads, n_threads_batch=args.threads,
                n_batch=512, logits_all=False, verbose=False)
    ordinary = llm.n_vocab() - 2
    rng = random.Random(42)
    prefill, decode = [], []
    for _ in range(args.repeats + 1):  # the first run warms up
        prompt = [rng.randrange(ordinary) for _ in range(args.prompt_len)]
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        middle = time.perf_counter()
        for _ in range(args.gen_len - 1):
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        end = time.perf_counter()
        prefill.append(args.prompt_len / (middle - start))
        decode.append((args.gen_len - 1) / (end - middle))
    print(json.dumps({"engine": "llama.cpp", "threads": args.threads, "prompt_len": args.prompt_len, "gen_len": args.gen_len,
                      "prefill_tokens_per_s": float(np.median(prefill[1:])), "decode_tokens_per_s": float(np.median(decode[1:]))}))


if __name__ == "__main__":
    main()
