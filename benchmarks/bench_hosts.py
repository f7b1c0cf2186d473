#!/usr/bin/env python3
"""Generation across two or four hosts on shaped links (issue 12), in one run: network namespaces, one rank of one
thread on each, joined by a plain veth pair (two hosts) or a bridge (four), or by `tandem-shaper`'s links (rate +
one-way delay, as `tc netem` would give; this kernel has no netem), against one rank alone and against the same
ranks on one host. Needs root and iproute2; run after `make build-release`.

Per link shape and layout — tp 2 across the hosts (each all-reduce crosses the link), pp 2 across them (one
hidden-state send per micro-batch and step), dp 2 (a replica per host; only requests and tokens cross), and with
`tp2pp2` tp 2 inside each host × pp 2 across (two ranks per host, against the same four ranks on one host) — with
`TANDEM_ACTIVATION_SYNC` float32, bfloat16 or int8 where activations cross: `tandem bench throughput` at 64 prompts
× (128 in, 64 out) and at 1 request × (128 in, 128 out), the `small` preset; the bytes that crossed the link in the
64-prompt run (IP packets, headers included, counted by the shaper) per output token; and a link check (`tandem
bench comm`, TCP, all-reduce of 4 KiB and 16 MiB between the two ranks; 16 MiB again with TANDEM_SOCKETS_PER_PEER=4)
and, in a build with the MPI trait where `mpirun` exists, the same all-reduces on Tandem's MPI backend
(TANDEM_MPI_WAIT=blocking) beside OpenMPI's own benchmark, both under one mpirun across the two hosts.

    sudo benchmarks/bench_hosts.py                      # make bench-hosts
    SHAPES="1gbit/200us" LAYOUTS="tp:int8 pp:float32" benchmarks/bench_hosts.py
    LAYOUTS= benchmarks/bench_hosts.py                  # the link checks only
    MPI_CHECK=0 benchmarks/bench_hosts.py               # without the MPI backend's link check
    HOSTS=4 benchmarks/bench_hosts.py                   # make bench-hosts4: tp 4, pp 4, dp 4, tp 2 × pp 2, all across
    BUILD=DIR benchmarks/bench_hosts.py                 # DIR's tandem and tandem-shaper (another build, to compare)

With HOSTS=4 each layout spreads over the four hosts, one rank each (`tp` is tp 4, `tp2pp2` puts every rank on its
own host), and each is compared with the same ranks on one host, so the ratio is what the links cost; the four
ranks share the VM's cores in both runs. Each row shows its 64 prompts' tokens' digest: float32 sync over TCP gives the
same tokens on every link.

The shaper runs with `--mtu 65000` (as a NIC's segmentation offload hands the stack 64 KB packets): it forwards
every packet in user space, on the same 2 cores as the ranks.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, ".build/release"))
TANDEM = os.path.join(BUILD, "tandem")
SHAPER = os.path.join(BUILD, "tandem-shaper")
MODEL = os.environ.get("MODEL", os.path.join(ROOT, ".build/models/small"))
SHAPES = os.environ.get("SHAPES", "veth 10gbit/50us 1gbit/200us").split()
LAYOUTS = os.environ.get("LAYOUTS", "tp:float32 tp:bfloat16 tp:int8 pp:float32 pp:int8 dp:float32 tp2pp2:float32 tp2pp2:int8").split()
HOSTS = int(os.environ.get("HOSTS", "2"))
if HOSTS not in (2, 4):
    raise SystemExit(f"HOSTS must be 2 or 4, got {HOSTS}")
ADDRESSES = [f"10.233.0.{host + 1}" for host in range(HOSTS)]


class Hosts:
    """HOSTS namespaces joined by a veth pair or a bridge (`shape` "veth") or by tandem-shaper's links of `shape`
    ("RATE/DELAY")."""

    def __init__(self, shape):
        self.shape = shape
        tag = str(os.getpid() % 100000)
        letters = "abcd"[:HOSTS]
        self.names = [f"tbh-{letter}-{tag}" for letter in letters]
        self.links = [f"tbh{letter}{tag}" for letter in letters]
        # With more than two hosts on veth: a namespace holding a bridge, and each host's veth peer in it.
        self.switch = f"tbh-sw-{tag}" if HOSTS > 2 and shape == "veth" else None
        self.shaper = None
        self.wire_bytes = None

    def ip(self, *args):
        subprocess.run(["ip", *args], check=True)

    def __enter__(self):
        for name in self.names:
            self.ip("netns", "add", name)
            self.ip("-n", name, "link", "set", "lo", "up")
        if self.switch:
            self.ip("netns", "add", self.switch)
            self.ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            self.ip("-n", self.switch, "link", "set", "br0", "up")
            for host in range(HOSTS):
                port = f"{self.links[host]}p"
                self.ip("link", "add", self.links[host], "type", "veth", "peer", "name", port)
                self.ip("link", "set", port, "netns", self.switch)
                self.ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        elif self.shape == "veth":
            self.ip("link", "add", self.links[0], "type", "veth", "peer", "name", self.links[1])
        if self.shape == "veth":
            for host in range(HOSTS):
                self.ip("link", "set", self.links[host], "netns", self.names[host])
                self.ip("-n", self.names[host], "addr", "add", ADDRESSES[host] + "/24", "dev", self.links[host])
                self.ip("-n", self.names[host], "link", "set", self.links[host], "up")
        else:
            rate, delay = self.shape.split("/")
            hosts = [arg for host in range(HOSTS) for arg in ("--host", f"{self.names[host]},{self.links[host]},{ADDRESSES[host]}")]
            self.shaper = subprocess.Popen([SHAPER, "--rate", rate, "--delay", delay, "--mtu", "65000", *hosts],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = self.shaper.stdout.readline()
            if not line.startswith("ready"):
                raise SystemExit("tandem-shaper did not start: " + self.shaper.communicate()[1])
        return self

    def __exit__(self, *exc):
        if self.shaper:
            self.shaper.terminate()
            stats = self.shaper.communicate()[1]
            print(stats, file=sys.stderr, end="")
            # "sent N packets (B bytes)" of each host: every byte that crossed the link.
            self.wire_bytes = sum(int(line.split("(")[1].split(" bytes")[0]) for line in stats.splitlines() if " sent " in line)
        for name in self.names + ([self.switch] if self.switch else []):
            subprocess.run(["ip", "netns", "del", name])

    def launch(self, program, env, per_host=1):
        """Runs `program` as `per_host` ranks per host (`tandem launch --nnodes HOSTS`) and returns rank 0's last JSON line."""
        token = f"bench-hosts-token-{os.getpid()}-{time.time_ns()}"
        runs = []
        for host in reversed(range(HOSTS)):
            environment = dict(os.environ, TANDEM_JOB_TOKEN=token, TANDEM_SOCKET_IFNAME=self.links[host], TANDEM_HOST_ID=self.names[host], **env)
            runs.append(subprocess.Popen(
                ["ip", "netns", "exec", self.names[host], TANDEM, "launch", "--nproc-per-node", str(per_host), "--nnodes", str(HOSTS),
                 "--node-rank", str(host), "--master-addr", ADDRESSES[0], "--master-port", "29500", "--", TANDEM, *program],
                env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [run.communicate(timeout=1800)[0] for run in runs]
        if any(run.returncode != 0 for run in runs):
            raise SystemExit("a host failed:\n" + "\n".join(outputs))
        # Host 0 was started last. The launcher prefixes each rank's lines with "[rankN]: ".
        lines = [line.split("]: ", 1)[-1] for line in outputs[-1].splitlines()]
        return json.loads([line for line in lines if line.startswith(("{", "[{"))][-1])


    def mpirun(self, program, env):
        """Runs `program` as one rank per host under one OpenMPI mpirun started on host 0, which reaches host 1
        through an rsh agent that runs the command in host 1's namespace (as ssh would on a real host); MPI's own
        traffic is held to TCP over the link. Returns rank 0's JSON lines."""
        with tempfile.TemporaryDirectory() as directory:
            agent = os.path.join(directory, "agent.sh")
            with open(agent, "w") as f:
                f.write("#!/bin/sh\nhost=$1; shift\ncase $host in\n"
                        + "".join(f"  {ADDRESSES[h]}) ns={self.names[h]} ;;\n" for h in range(HOSTS))
                        + "  *) echo \"agent: unknown host $host\" >&2; exit 1 ;;\nesac\nexec ip netns exec \"$ns\" sh -c \"$*\"\n")
            os.chmod(agent, 0o755)
            subnet = ".".join(ADDRESSES[0].split(".")[:3]) + ".0/24"
            forwarded = [arg for key in sorted(env) for arg in ("-x", key)]
            command = ["ip", "netns", "exec", self.names[0], "mpirun", "--allow-run-as-root", "--oversubscribe", "--host",
                       ",".join(f"{address}:1" for address in ADDRESSES), "-np", str(HOSTS), "--mca", "plm_rsh_agent", agent, "--mca", "oob_tcp_if_include", subnet,
                       "--mca", "pml", "ob1", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", subnet, "-x", f"MASTER_ADDR={ADDRESSES[0]}", *forwarded, *program]
            out = subprocess.run(command, env=dict(os.environ, **env), capture_output=True, text=True, timeout=1800)
            if out.returncode != 0:
                raise SystemExit("mpirun failed:\n" + out.stdout + out.stderr)
            return [json.loads(line) for line in out.stdout.splitlines() if line.startswith(("{", "[{"))]


def mpi_check(shape):
    """4 KiB and 16 MiB all-reduce between the hosts under one mpirun: Tandem's MPI backend (blocking waits) and
    OpenMPI's own benchmark (benchmarks/mpi_bench.c), same library, same transport (TCP over the link)."""
    with tempfile.TemporaryDirectory() as directory:
        bench = os.path.join(directory, "mpi_bench")
        subprocess.run(["mpicc", "-O2", os.path.join(ROOT, "benchmarks/mpi_bench.c"), "-o", bench], check=True)
        times = {}
        for size in (4096, 16 << 20):
            with Hosts(shape) as hosts:
                print(f"$ mpirun tandem bench comm --backend mpi / mpi_bench, all_reduce {size} bytes  # across {shape}", file=sys.stderr, flush=True)
                mine = hosts.mpirun([TANDEM, "bench", "comm", "--op", "all_reduce", "--backend", "mpi", "--min-bytes", str(size),
                                     "--max-bytes", str(size), "--json"], {"TANDEM_BACKEND": "mpi", "TANDEM_MPI_WAIT": "blocking"})[-1][0]
                iterations = 2000 if size == 4096 else 20
                theirs = hosts.mpirun([bench, "all_reduce", str(size), str(size), "2", str(iterations), str(iterations // 10)], {})[-1]
                times[size] = (mine["time_us"], theirs["time_us"])
    return times


# Each layout's arguments and ranks per host. Two hosts: one rank per host with tp, pp or dp 2 across them, or tp 2
# inside each host with the two pipeline stages across them (4 ranks). Four hosts: one rank per host, tp, pp or dp 4
# across them, or tp 2 × pp 2 with every all-reduce and every stage send crossing a link.
LAYOUT_ARGS = {
    2: {"tp": (["--tp", "2"], 1), "pp": (["--pp", "2"], 1), "dp": (["--dp", "2"], 1), "tp2pp2": (["--tp", "2", "--pp", "2"], 2)},
    4: {"tp": (["--tp", "4"], 1), "pp": (["--pp", "4"], 1), "dp": (["--dp", "4"], 1), "tp2pp2": (["--tp", "2", "--pp", "2"], 1)},
}[HOSTS]
LAYOUT_LABELS = {
    2: {"tp": "tp 2 across", "pp": "pp 2 across", "dp": "dp 2 across", "tp2pp2": "tp 2 inside × pp 2 across"},
    4: {"tp": "tp 4 across", "pp": "pp 4 across", "dp": "dp 4 across", "tp2pp2": "tp 2 × pp 2, all across"},
}[HOSTS]


def throughput(prompts, output, layout=None, hosts=None, sync="float32"):
    args = ["bench", "throughput", "--model", MODEL, "--threads", "1", "--num-prompts", str(prompts), "--input-len", "128",
            "--output-len", str(output), "--json"]
    per_host = 1
    if layout:
        extra, per_host = LAYOUT_ARGS[layout]
        args += extra
    print(f"$ TANDEM_ACTIVATION_SYNC={sync} tandem {' '.join(args)}" + (f"  # across {hosts.shape}" if hosts else ""), file=sys.stderr, flush=True)
    if hosts is None:
        out = subprocess.run([TANDEM, *args], check=True, capture_output=True, text=True).stdout
        return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return hosts.launch(args, {"TANDEM_ACTIVATION_SYNC": sync}, per_host)


def link_check(shape):
    """All-reduce times (µs) between the two hosts: 4 KiB, and 16 MiB over 1 and 4 connections per peer."""
    times = {}
    for size, sockets in (("4K", "1"), ("16M", "1"), ("16M", "4")):
        with Hosts(shape) as hosts:
            args = ["bench", "comm", "--op", "all_reduce", "--backend", "tcp", "--min-bytes", size, "--max-bytes", size, "--json"]
            print(f"$ TANDEM_SOCKETS_PER_PEER={sockets} tandem {' '.join(args)}  # across {shape}", file=sys.stderr, flush=True)
            row = hosts.launch(args, {"TANDEM_SOCKETS_PER_PEER": sockets})[0]
            times[(row["bytes"], sockets)] = row["time_us"]
    return times


def main():
    if os.getuid() != 0:
        raise SystemExit("needs root (network namespaces, TUN interfaces)")
    if not os.path.isdir(MODEL):
        subprocess.run([TANDEM, "make-model", "--out", MODEL, "--preset", "small"], check=True, stdout=subprocess.DEVNULL)
    if LAYOUTS:
        alone = throughput(64, 64), throughput(1, 128)
        # "÷ one host": against the same ranks on one host with four hosts and for tp 2 × pp 2; against one rank
        # alone for one rank per host on two hosts.
        print("| link | layout | sync | 64 prompts: output tokens/s | ÷ one host | 1 request: output tokens/s | "
              "bytes on the link per output token (64 prompts) | 64 prompts' tokens: digest |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| – (one host) | 1 rank | – | {alone[0]['output_tokens_per_s']:.1f} | 1.00× | {alone[1]['output_tokens_per_s']:.1f} | – | "
              f"{alone[0]['output_digest'][:8]} |", flush=True)
    checks, mpi, baselines = {}, {}, {}
    with_mpi = (os.environ.get("MPI_CHECK", "1") != "0" and shutil.which("mpirun")
                and "MPI backend in this build: yes" in subprocess.run([TANDEM, "info"], capture_output=True, text=True).stdout)
    for shape in SHAPES:
        checks[shape] = link_check(shape)
        if with_mpi:
            try:
                mpi[shape] = mpi_check(shape)
            except SystemExit as failure:  # mpirun's own failure (its daemon crashed once here in hwloc) ends only this check
                print(f"the MPI check across {shape} failed; going on without it:\n{failure}", file=sys.stderr, flush=True)
        for item in LAYOUTS:
            layout, sync = item.split(":")
            # The same ranks on one host: the baseline of every layout on four hosts, and of tp 2 × pp 2 on two
            # (one rank per host against one rank alone otherwise). The tokens' digests show which runs generated the
            # same tokens: float32 sync over TCP on any link should match, and one host's too where its shared-memory
            # all-reduce adds in the same order (two ranks; four add in another order, so near-ties may part).
            if layout not in baselines:
                baselines[layout] = throughput(64, 64, layout), throughput(1, 128, layout)
                args = LAYOUT_ARGS[layout][0]
                label = " × ".join(f"{args[i][2:]} {args[i + 1]}" for i in range(0, len(args), 2))
                print(f"| – (one host) | {label}, the same ranks | – | {baselines[layout][0]['output_tokens_per_s']:.1f} | – | "
                      f"{baselines[layout][1]['output_tokens_per_s']:.1f} | – | {baselines[layout][0]['output_digest'][:8]} |", flush=True)
            base = baselines[layout] if HOSTS > 2 or layout == "tp2pp2" else alone
            with Hosts(shape) as hosts:
                batch = throughput(64, 64, layout, hosts, sync)
            wire = hosts.wire_bytes
            with Hosts(shape) as hosts:
                single = throughput(1, 128, layout, hosts, sync)
            generated = batch["num_prompts"] * batch["output_len"]
            per_token = f"{wire / generated:,.0f}" if wire is not None else "(veth: not counted)"
            print(f"| {shape} | {LAYOUT_LABELS[layout]} | {sync} | {batch['output_tokens_per_s']:.1f} | "
                  f"{batch['output_tokens_per_s'] / base[0]['output_tokens_per_s']:.2f}× | {single['output_tokens_per_s']:.1f} | {per_token} | {batch['output_digest'][:8]} |", flush=True)
    print("\n| link | all-reduce 4 KiB (µs) | all-reduce 16 MiB (ms) | its bus bandwidth (Gbit/s) | the same over 4 connections per peer (ms) |")
    print("|---|---|---|---|---|")
    for shape, times in checks.items():
        big = times[(16 << 20, "1")]
        print(f"| {shape} | {times[(4096, '1')]:.0f} | {big / 1000:.1f} | {(16 << 20) * 8 * 2 * (HOSTS - 1) / HOSTS / (big * 1e-6) / 1e9:.2f} | {times[(16 << 20, '4')] / 1000:.1f} |")
    if mpi:
        print("\n| link | all-reduce 4 KiB (µs): Tandem TCP / Tandem on MPI / OpenMPI | 16 MiB (ms): Tandem TCP / Tandem on MPI / OpenMPI |")
        print("|---|---|---|")
        for shape, times in mpi.items():
            small, big = times[4096], times[16 << 20]
            print(f"| {shape} | {checks[shape][(4096, '1')]:.0f} / {small[0]:.0f} / {small[1]:.0f} | "
                  f"{checks[shape][(16 << 20, '1')] / 1000:.1f} / {big[0] / 1000:.1f} / {big[1] / 1000:.1f} |")


if __name__ == "__main__":
    main()
