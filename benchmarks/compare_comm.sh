#!/usr/bin/env bash
# Measures Tandem beside OpenMPI and Gloo on the same machine in one run, for the same ops and sizes with the
# same timing rule (median per-iteration time of the slowest rank), and prints a markdown table of Tandem's
# figures beside theirs as ratios. Needs: `make build-release compare-deps` (what `make compare` does first).
#
# MODE=tcp (default): Tandem over TCP (--backend tcp), OpenMPI with its TCP transport only, Gloo (TCP).
# MODE=shm: Tandem over shared memory (--backend shm), OpenMPI with its shared-memory transport (btl vader);
#           Gloo has no shared-memory transport and is left out.
# MODE=mpi: Tandem's MPI backend (TANDEM_BACKEND=mpi, ranks started by the same mpirun with the same transport,
#           vader) beside OpenMPI's own benchmark: the ratio is the wrapper's overhead. Needs a build with the MPI
#           trait (`make compare-mpi` builds it). MPI_BENCH_THREAD_LEVEL=multiple starts OpenMPI's benchmark at
#           MPI_THREAD_MULTIPLE, the level Tandem's backend runs at (default: plain MPI_Init).
#
# Each tool runs REPEATS times per op (interleaved, a pause between runs) and the table shows the median of
# those runs: on a small shared machine one run of any tool can land on a bad scheduling moment.
#
#   benchmarks/compare_comm.sh [RANKS...]        default: 2 4
#   ITERS=50 REPEATS=3 MIN_BYTES=4096 MAX_BYTES=16777216 STEP_FACTOR=16 OPS=all_reduce benchmarks/compare_comm.sh 2
set -euo pipefail
cd "$(dirname "$0")/.."
RANKS=("${@:-2 4}")
read -r -a RANKS <<< "${RANKS[*]}"
ITERS=${ITERS:-50}
REPEATS=${REPEATS:-3}
WARMUP=${WARMUP:-10}
OPS=${OPS:-all_reduce,all_gather,reduce_scatter,broadcast,all_to_all,send_recv}
MIN=${MIN_BYTES:-4096}
MAX=${MAX_BYTES:-16777216}
STEP=${STEP_FACTOR:-16}
MODE=${MODE:-tcp}
TANDEM=.build/release/tandem
OUT=benchmarks/out
case "$MODE" in
  tcp) MPI_TRANSPORT=(--mca btl tcp,self --mca btl_tcp_if_include lo) ;;
  shm|mpi) MPI_TRANSPORT=(--mca btl vader,self) ;;
  *) echo "MODE must be tcp, shm or mpi, got $MODE" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
[ -x "$TANDEM" ] || { echo "build first: make build-release" >&2; exit 1; }
g++ -O2 -std=c++17 benchmarks/gloo_bench.cc -o "$OUT/gloo_bench" -lgloo -lpthread
mpicc -O2 benchmarks/mpi_bench.c -o "$OUT/mpi_bench"

results="$OUT/results-$MODE.jsonl"
: > "$results"
for n in "${RANKS[@]}"; do
  for op in ${OPS//,/ }; do
   for _ in $(seq "$REPEATS"); do
    # Into a file first: a process started beside the benchmark (python's start-up) would steal its cores.
    if [ "$MODE" = mpi ]; then
      TANDEM_BACKEND=mpi mpirun --allow-run-as-root --oversubscribe -np "$n" --mca pml ob1 "${MPI_TRANSPORT[@]}" \
        "$TANDEM" bench comm --op "$op" --min-bytes "$MIN" --max-bytes "$MAX" --step-factor "$STEP" \
        --iters "$ITERS" --warmup "$WARMUP" --json > "$OUT/tandem.json"
    else
      "$TANDEM" bench comm --nproc "$n" --backend "$MODE" --op "$op" --min-bytes "$MIN" --max-bytes "$MAX" --step-factor "$STEP" \
        --iters "$ITERS" --warmup "$WARMUP" --json > "$OUT/tandem.json"
    fi
    python3 -c 'import json,sys; [print(json.dumps(dict(r, tool="tandem"))) for r in json.load(open(sys.argv[1]))]' \
      "$OUT/tandem.json" >> "$results"
    mpirun --allow-run-as-root --oversubscribe -np "$n" --mca pml ob1 "${MPI_TRANSPORT[@]}" \
      "$OUT/mpi_bench" "$op" "$MIN" "$MAX" "$STEP" "$ITERS" "$WARMUP" >> "$results"
    if [ "$MODE" = tcp ]; then
      store=$(mktemp -d)
      "$TANDEM" launch --nproc-per-node "$n" --master-port 0 --no-prefix -- \
        "$OUT/gloo_bench" "$store" "$op" "$MIN" "$MAX" "$STEP" "$ITERS" "$WARMUP" >> "$results"
      rm -rf "$store"
    fi
    sleep 0.5
   done
  done
done
python3 benchmarks/compare_table.py "$results" | tee "$OUT/compare-$MODE.md"
