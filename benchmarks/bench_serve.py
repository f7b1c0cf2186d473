#!/usr/bin/env python3
"""`tandem serve` against the engine alone on the same requests (issue 10's targets), in one run, on the `small`
preset with --tp 2 × 1 thread:

  1. saturation: 64 random-token prompts × (128 in, 128 out) sent at once — 64 concurrent streams — through
     `tandem bench serve`, against `tandem bench throughput` on the same prompts (same seed): output tokens/s,
     errors, and /health's latency asked every 100 ms meanwhile;
  2. low load: 32 prompts × (128 in, 2 out) one at a time (`--concurrency 1` / `--sequential`): time to first
     token through the server against the engine's own — both for the same requests in the same run (the client's
     TTFT against the server's own `tandem:time_to_first_token_seconds`, counted from the request's arrival in
     the engine, which `bench serve` reads from /metrics before and after its timed requests), and against `bench throughput --sequential` in its own
     process;
  3. a Poisson run at 2 requests/s for the latency table.

The engine-alone runs use their own processes; the server is started once and idles (0 % CPU) while they run.
With LLAMA_SERVER (llama.cpp's `llama-server` binary) set, the same `bench serve` runs 1 and 2 also measure it on
the same weights (a bf16 GGUF written by `tandem make-model --gguf bf16` or tools/reference/convert_to_gguf.py; GGUF= names it), with 2 threads and 64 slots,
after the Tandem server has stopped.

    benchmarks/bench_serve.py            # after `make build-release`; prints a table and the targets
    LLAMA_SERVER=.peers/llama.cpp/build/bin/llama-server GGUF=small.gguf benchmarks/bench_serve.py
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, ".build/release/tandem"))
MODEL = os.environ.get("MODEL", os.path.join(ROOT, ".build/models/small"))
TP = os.environ.get("TP", "2")


def run(*args):
    print("$ tandem " + " ".join(args), file=sys.stderr, flush=True)
    output = subprocess.run([TANDEM, *args], check=True, capture_output=True, text=True).stdout
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def wait_until_healthy(url, process):
    deadline = time.time() + 300
    while True:
        try:
            if urllib.request.urlopen(url + "/health", timeout=5).status == 200:
                return
        except OSError:
            pass
        if time.time() > deadline or process.poll() is not None:
            sys.exit(f"the server at {url} did not start")
        time.sleep(0.5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        subprocess.run([TANDEM, "make-model", "--out", MODEL, "--preset", "small", "--force"], check=True)
    engine = ["--model", MODEL, "--tp", TP, "--threads", "1"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([TANDEM, "serve", *engine, "--port", str(port)], stderr=subprocess.DEVNULL)
    saturation = ["--num-prompts", "64", "--input-len", "128", "--output-len", "128", "--seed", "0"]
    low = ["--num-prompts", "32", "--input-len", "128", "--output-len", "2", "--seed", "1"]
    try:
        wait_until_healthy(url, server)
        client = ["--url", url, "--model-dir", MODEL]
        engine_batch = run("bench", "throughput", *engine, *saturation, "--json")
        served_batch = run("bench", "serve", *client, *saturation, "--json")
        engine_single = run("bench", "throughput", *engine, *low, "--sequential", "--json")
        served_single = run("bench", "serve", *client, *low, "--concurrency", "1", "--json")
        inside_ms = served_single["server_ttft_mean_ms"]
        poisson = run("bench", "serve", *client, "--num-prompts", "32", "--input-len", "128", "--output-len", "64", "--request-rate", "2",
                      "--seed", "2", "--json")
    finally:
        server.terminate()
        server.wait(timeout=60)
    peer = {}
    if os.environ.get("LLAMA_SERVER"):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # 64 slots of 256 positions (128 in + 128 out), continuous batching, the two cores Tandem's ranks use.
        llama = subprocess.Popen([os.environ["LLAMA_SERVER"], "-m", os.environ["GGUF"], "--port", str(port), "-t", "2", "-tb", "2",
                                  "-np", "64", "-c", str(64 * 256), "-cb", "--no-warmup"], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            wait_until_healthy(url, llama)
            client = ["--url", url, "--model-dir", MODEL]
            peer["batch"] = run("bench", "serve", *client, *saturation, "--json")
            peer["single"] = run("bench", "serve", *client, *low, "--concurrency", "1", "--json")
        finally:
            llama.terminate()
            llama.wait(timeout=60)

    print(f"tandem serve vs the engine alone — small preset, tp {TP} × 1 thread, bf16\n")
    print("| run | requests | failed | output tok/s | TTFT median / p99 (ms) | TPOT median (ms) | ITL p99 (ms) | E2E median (ms) | /health p99 (ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, report in [("64 × (128, 128) at once (64 streams)", served_batch), ("32 × (128, 2), one at a time", served_single),
                         ("32 × (128, 64), Poisson 2/s", poisson)]:
        print(f"| serve: {name} | {report['completed']} | {report['failed']} | {report['output_tokens_per_s']:.1f} | "
              f"{report['ttft_ms']['median']:.1f} / {report['ttft_ms']['p99']:.1f} | {report['tpot_ms']['median']:.1f} | "
              f"{report['itl_ms']['p99']:.1f} | {report['e2el_ms']['median']:.1f} | {report['health_ms']['p99']:.2f} |")
    for name, report in [("64 × (128, 128) at once (64 streams)", peer.get("batch")), ("32 × (128, 2), one at a time", peer.get("single"))]:
        if report:
            print(f"| llama-server: {name} | {report['completed']} | {report['failed']} | {report['output_tokens_per_s']:.1f} | "
                  f"{report['ttft_ms']['median']:.1f} / {report['ttft_ms']['p99']:.1f} | {report['tpot_ms']['median']:.1f} | "
                  f"{report['itl_ms']['p99']:.1f} | {report['e2el_ms']['median']:.1f} | {report['health_ms']['p99']:.2f} |")
    print(f"| engine alone: 64 × (128, 128) at once | 64 | 0 | {engine_batch['output_tokens_per_s']:.1f} | | | | | |")
    print(f"| engine alone: 32 × (128, 2), one at a time | 32 | 0 | | {engine_single['ttft_rest_median_s'] * 1000:.1f} (median, requests 2–32) | | | | |")
    ratio = served_batch["output_tokens_per_s"] / engine_batch["output_tokens_per_s"]
    overhead = served_single["ttft_ms"]["mean"] - inside_ms
    print()
    print(f"low load, the same 32 requests: TTFT at the client {served_single['ttft_ms']['mean']:.2f} ms (mean), inside the server's engine "
          f"{inside_ms:.2f} ms (mean); engine alone in its own process {engine_single['ttft_rest_median_s'] * 1000:.1f} ms (median)")
    print()
    print(f"targets: saturation throughput {ratio * 100:.1f}% of the engine's (≥ 90%); "
          f"TTFT the server adds at low load {overhead:.2f} ms (≤ 3 ms; client mean − engine mean, same requests); "
          f"64 streams: {served_batch['failed']} errors (0); "
          f"/health p99 under that load {served_batch['health_ms']['p99']:.2f} ms over {served_batch['health_checks']} asks (< 50 ms), "
          f"{served_batch['health_failures']} not 200")
    if peer:
        print(f"against llama-server on the same weights: saturation output tokens/s {served_batch['output_tokens_per_s'] / peer['batch']['output_tokens_per_s']:.2f}x, "
              f"TTFT at low load (median) {served_single['ttft_ms']['median']:.1f} vs {peer['single']['ttft_ms']['median']:.1f} ms")


if __name__ == "__main__":
    main()
