# Tandem — the two set-up commands (see README.md):
#   make run    install what is missing, build in release, run the main job
#   make test   install what is missing, build, run every test
SHELL := /bin/bash
SWIFT ?= swift
NPROC ?= 2
# The embedded default `make run` generates from (written by `tandem make-model` on first use).
MODEL ?= .build/models/small
PRESET ?= small

.PHONY: run test build build-release deps compare-deps compare compare-mpi fuzz soak bench-serve bench-layouts bench-quantized compare-gguf compare-quantizer bench-sync bench-hosts bench-hosts4 clean

# System packages the build and tests need: OpenBLAS (matrix multiply) and pkg-config to find it; the
# multi-host test needs iproute2 (network namespaces stand in for hosts), the cluster-launch and MPI tests
# OpenMPI (openmpi-bin, and libopenmpi-dev for the MPI trait's build); the independent references in
# tools/reference need Python 3 with the `tokenizers`, `numpy`, `jinja2`, `openai`, `prometheus_client` and `gguf` packages (PyPI).
deps:
	@command -v $(SWIFT) >/dev/null || { echo "Swift is not installed: see https://www.swift.org/install" >&2; exit 1; }
	@missing=""; \
	{ command -v pkg-config >/dev/null && pkg-config --exists openblas; } || missing="libopenblas-dev pkg-config"; \
	if ! command -v ip >/dev/null && [ "$$(id -u)" = 0 ]; then missing="$$missing iproute2"; fi; \
	command -v mpirun >/dev/null || missing="$$missing openmpi-bin"; \
	pkg-config --exists mpi 2>/dev/null || missing="$$missing libopenmpi-dev"; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "install OpenBLAS and pkg-config (missing:$$missing)" >&2; exit 1; \
	  elif [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
	  elif command -v sudo >/dev/null; then echo "installing:$$missing"; sudo apt-get update -qq && sudo apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (install them: apt-get install$$missing)" >&2; exit 1; fi; fi
	@if ! command -v python3 >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3 python3-pip; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq python3 python3-pip; fi; fi
	@python3 -c "import tokenizers, numpy, jinja2, openai, prometheus_client, gguf" 2>/dev/null || { echo "installing Python packages: tokenizers numpy jinja2 openai prometheus_client gguf"; \
	  python3 -m pip install --quiet tokenizers numpy jinja2 openai prometheus_client gguf 2>/dev/null || python3 -m pip install --quiet --break-system-packages tokenizers numpy jinja2 openai prometheus_client gguf; }

build-release: deps
	$(SWIFT) build -c release --product tandem

# Tests build in release: the collective matrix and stress runs move hundreds of MiB through reference
# checks, which a debug build makes ~100× slower. They build with the MPI trait (the MPI backend and its
# tests); the communication library is also compiled without it, in a scratch folder of its own (switching
# traits in one folder rebuilds everything), so the default build's branches compile too.
build: deps
	$(SWIFT) build -c release --target TandemComm --scratch-path .build/without-traits
	$(SWIFT) build -c release --build-tests --traits MPI

run: build-release
	@[ -f $(MODEL)/model.safetensors ] || .build/release/tandem make-model --out $(MODEL) --preset $(PRESET) --force
	.build/release/tandem generate --model $(MODEL) --tp $(NPROC) --temperature 0 --max-tokens 32 \
	  --prompt "Tandem splits a language model across" --prompt "The quick brown fox"

test: build
	$(SWIFT) test -c release --skip-build --disable-swift-testing

# Comparison against Gloo and OpenMPI over TCP, and OpenMPI over shared memory (benchmarks/compare_comm.sh),
# needs their Debian packages.
compare-deps:
	@missing=""; for p in openmpi-bin libopenmpi-dev libgloo-dev g++ pkg-config; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing; fi; fi

compare: build-release compare-deps
	MODE=tcp benchmarks/compare_comm.sh
	MODE=shm benchmarks/compare_comm.sh

# Tandem's MPI backend beside OpenMPI's own benchmark under one mpirun (the wrapper's overhead); builds the
# tandem binary with the MPI trait.
compare-mpi: compare-deps
	$(SWIFT) build -c release --traits MPI --product tandem
	MODE=mpi benchmarks/compare_comm.sh

# Fuzzing (libFuzzer + AddressSanitizer) of the wire formats and file parsers: each harness runs until
# FUZZ_RUNS inputs (default 10^6) or FUZZ_SECONDS (default 1800) pass. See Fuzz/README.md; last results in
# docs/RELIABILITY.md.
fuzz: deps
	Fuzz/run.sh

# Kill -9 soak: 100 trials of mixed, checked collectives over tcp/shm/hier with one rank SIGKILLed at a random
# operation (benchmarks/soak_kill.py; last results in docs/RELIABILITY.md).
soak: build
	benchmarks/soak_kill.py --trials 100 --mean-ops 10000

# tandem serve against the engine alone on the same requests: saturation throughput, TTFT added at low load, 64
# streams, /health under load (benchmarks/bench_serve.py; last results in docs/PERFORMANCE.md).
bench-serve: build-release
	benchmarks/bench_serve.py

# Every tp × pp layout of 1, 2 and 4 ranks in one run: throughput at 64 prompts, single-request decode, each
# stage's idle share (benchmarks/bench_layouts.py; last results in docs/PERFORMANCE.md).
bench-layouts: build-release
	benchmarks/bench_layouts.py

# Quantized weights against bf16 and llama.cpp on the same blocks: decode at 1 and 2 cores, throughput, KL divergence
# (benchmarks/bench_quantized.py; last results in docs/PERFORMANCE.md).
bench-quantized: build-release
	benchmarks/bench_quantized.py

# Tandem against llama.cpp on the same GGUF files (the converter's BF16, llama.cpp's Q8_0 and Q4_0): tokenization and
# greedy tokens, with both engines' and the numpy reference's top tokens where they part (benchmarks/compare_gguf.py;
# needs llama-cpp-python in .peers/llama and the files bench-quantized makes; last results in docs/PERFORMANCE.md).
compare-gguf: build-release
	.peers/llama/bin/python benchmarks/compare_gguf.py

# Activation sync (TANDEM_ACTIVATION_SYNC float32/bfloat16/int8) at tp 2 and pp 2 on small and small-moe: bytes per step,
# decode speed and greedy agreement (benchmarks/bench_sync.py; last results in docs/PERFORMANCE.md).
bench-sync: build-release
	benchmarks/bench_sync.py

# Generation across two namespace hosts on shaped links (veth, 10 Gbit/s + 50 us, 1 Gbit/s + 200 us through
# tandem-shaper): tp, pp and dp across the hosts, float32/bfloat16/int8 sync, against one host (benchmarks/bench_hosts.py;
# needs root; last results in docs/PERFORMANCE.md).
bench-hosts: build-release
	$(SWIFT) build -c release --product tandem-shaper
	benchmarks/bench_hosts.py

# The same across four namespace hosts, one rank each: tp 4, pp 4, dp 4 and tp 2 x pp 2 across them, each against the
# same ranks on one host.
bench-hosts4: build-release
	$(SWIFT) build -c release --product tandem-shaper
	HOSTS=4 benchmarks/bench_hosts.py

# Tandem's quantizers (q8_0, q4_0, q4_k, q6_k) against llama.cpp's llama-quantize on the small preset, block for block
# (benchmarks/compare_quantizer.py; needs llama-cpp-python in .peers/llama; last results in docs/PERFORMANCE.md).
compare-quantizer: build-release
	benchmarks/compare_quantizer.py

clean:
	rm -rf .build
