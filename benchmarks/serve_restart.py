#!/usr/bin/env python3
"""How long `tandem serve` is down when a rank is killed: starts the server (small preset, tp 2), kills rank 1
with SIGKILL --trials times while idle, and prints when /health turned 503 and when it was 200 again. Kills
come --gap seconds apart; under the restart policy's 60 s a new kill continues the streak (1, 2, 4 … s back-off).

    benchmarks/serve_restart.py [--trials 3] [--gap 1]      # after `make build-release`
"""
import argparse
import os
import signal
import socket
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANDEM = os.environ.get("TANDEM", os.path.join(ROOT, ".build/release/tandem"))
MODEL = os.environ.get("MODEL", os.path.join(ROOT, ".build/models/small"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--gap", type=float, default=1.0)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/health"

    def health():
        try:
            return urllib.request.urlopen(url, timeout=5).status
        except Exception as error:  # a refused connection or a 503
            return getattr(error, "code", 0)

    server = subprocess.Popen([TANDEM, "serve", "--model", MODEL, "--tp", "2", "--threads", "1", "--port", str(port)],
                              stderr=subprocess.DEVNULL)
    try:
        while health() != 200:
            time.sleep(0.2)
        for trial in range(args.trials):
            # Workers are children of whichever thread spawned them.
            children = [pid for task in os.listdir(f"/proc/{server.pid}/task")
                        for pid in open(f"/proc/{server.pid}/task/{task}/children").read().split()]
            start = time.time()
            os.kill(int(children[0]), signal.SIGKILL)
            while health() == 200 and time.time() - start < 10:
                time.sleep(0.005)
            down = time.time() - start
            while health() != 200 and time.time() - start < 120:
                time.sleep(0.005)
            print(f"kill {trial + 1}: /health 503 after {down * 1000:.0f} ms, 200 again after {(time.time() - start) * 1000:.0f} ms")
            time.sleep(args.gap)
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
