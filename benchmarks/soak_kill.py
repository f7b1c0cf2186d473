#!/usr/bin/env python3
"""Kill -9 soak: mixed collectives over tcp, shm and hier groups, one rank SIGKILLed at a random operation.

Each trial launches WORLD ranks of `tandem-test-worker soak` through `tandem launch` (backend rotating
tcp → shm → hier), with a random victim (rank 0, the store's host, included) killing itself with SIGKILL at a
random operation. A trial passes when:
  - every surviving rank reports a named error (peerLost / peerAborted naming the victim) within 3 s of the kill,
  - the launcher exits non-zero naming the victim and signal 9 as the rank that failed first,
  - no result was wrong before the kill (every operation is checked against its closed form),
  - it ends within the hang limit, leaves no tandem-test-worker process and nothing in /dev/shm (tdm*).
Usage: benchmarks/soak_kill.py [--trials 100] [--mean-ops 10000] [--world 4] [--seed 1]
Prints one line per trial and a summary; exit status 1 if any trial failed.
"""
import argparse
import os
import random
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.path.join(ROOT, ".build/release/tandem")
WORKER = os.path.join(ROOT, ".build/release/tandem-test-worker")
BACKENDS = ["tcp", "shm", "hier"]


def shm_entries():
    return sorted(name for name in os.listdir("/dev/shm") if name.startswith("tdm"))


def workers_alive():
    # Anchored: only processes whose command line starts with the worker (not this script, not a launcher).
    result = subprocess.run(["pgrep", "-f", "^" + re.escape(WORKER) + " "], capture_output=True, text=True)
    return [line for line in result.stdout.split() if line]


def trial(index, args, rng):
    backend = BACKENDS[index % len(BACKENDS)]
    victim = rng.randrange(args.world)
    kill_at = rng.randrange(args.mean_ops // 2, args.mean_ops * 3 // 2)
    command = [TANDEM, "launch", "--nproc-per-node", str(args.world), "--master-port", "0", "--grace-period", "5", "--",
               WORKER, "soak", f"ops={10**9}", f"seed={args.seed * 1000 + index}", f"victim={victim}", f"kill-at={kill_at}"]
    if backend == "hier":
        command.append("--fake-hosts")
    environment = dict(os.environ, TANDEM_BACKEND=backend)
    start = time.time()
    problems = []
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=args.hang_seconds, env=environment)
        output, errors, code = completed.stdout, completed.stderr, completed.returncode
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        errors, code = "", None
        problems.append(f"hang: still running after {args.hang_seconds} s")
        subprocess.run(["pkill", "-9", "-f", "^" + re.escape(WORKER) + " "])
    seconds = time.time() - start
    victim_ms = None
    survivors = {}
    progress = {}
    for line in output.splitlines():
        if m := re.search(r"VICTIM rank=(\d+) op=(\d+) at_ms=(\d+)", line):
            victim_ms = int(m.group(3))
        elif m := re.search(r"ERROR kind=(\w+) rank=(-?\d+) at_ms=(\d+)", line):
            survivors[int(line.split("]")[0].replace("[rank", ""))] = (m.group(1), int(m.group(2)), int(m.group(3)))
        elif m := re.search(r"SOAK rank=(\d+) ops=(\d+) wrong=(\d+)", line):
            progress[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    latencies = []
    if victim_ms is None:
        problems.append("the victim never reported")
    for rank in range(args.world):
        if rank == victim:
            continue
        if rank not in survivors:
            problems.append(f"rank {rank} reported no error")
            continue
        kind, named, at_ms = survivors[rank]
        if kind not in ("peerLost", "peerAborted"):
            problems.append(f"rank {rank} failed with {kind}, not a lost peer")
        if victim_ms is not None:
            latencies.append(at_ms - victim_ms)
            if at_ms - victim_ms > 3000:
                problems.append(f"rank {rank} took {at_ms - victim_ms} ms")
    wrong = sum(bad for _, bad in progress.values())
    if wrong:
        problems.append(f"{wrong} wrong results")
    operations = min((done for done, _ in progress.values()), default=0)
    if code is not None:
        if code == 0:
            problems.append("the launcher exited 0")
        if not re.search(rf"rank {victim} \(pid \d+\) failed first: it was killed by signal 9", errors):
            problems.append("the launcher did not name the victim: " + errors.strip().splitlines()[-1:][0] if errors.strip() else "no launcher message")
    time.sleep(0.2)
    if left := workers_alive():
        problems.append(f"workers left running: {left}")
        subprocess.run(["pkill", "-9", "-f", "^" + re.escape(WORKER) + " "])
    if left := shm_entries():
        problems.append(f"left in /dev/shm: {left}")
        for name in left:
            os.unlink(os.path.join("/dev/shm", name))
    return dict(index=index, backend=backend, victim=victim, kill_at=kill_at, operations=operations, seconds=seconds,
                latencies=latencies, wrong=wrong, hang=code is None, problems=problems)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--mean-ops", type=int, default=10000)
    parser.add_argument("--world", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hang-seconds", type=int, default=120)
    args = parser.parse_args()
    for path in (TANDEM, WORKER):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run `make build` first")
    rng = random.Random(args.seed)
    results = []
    for index in range(args.trials):
        result = trial(index, args, rng)
        results.append(result)
        worst = max(result["latencies"], default=-1)
        print(f"trial {index:3d} {result['backend']:4s} victim {result['victim']} at op {result['kill_at']:6d}: "
              f"{result['operations']:6d} ops checked, detected in ≤{worst} ms, {result['seconds']:.1f} s "
              f"{'ok' if not result['problems'] else 'FAILED: ' + '; '.join(result['problems'])}", flush=True)
    latencies = sorted(latency for result in results for latency in result["latencies"])
    failed = [result for result in results if result["problems"]]
    print()
    counts = ", ".join(f"{backend} {sum(r['backend'] == backend for r in results)}" for backend in BACKENDS)
    print(f"trials: {len(results)} ({counts}), world {args.world}")
    print(f"operations checked before the kills: {sum(r['operations'] for r in results)}")
    print(f"wrong results: {sum(r['wrong'] for r in results)}; hangs: {sum(r['hang'] for r in results)}; failed trials: {len(failed)}")
    if latencies:
        print(f"survivor detection after the kill (ms): median {latencies[len(latencies) // 2]}, "
              f"p99 {latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)]}, max {latencies[-1]} over {len(latencies)} survivors")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
