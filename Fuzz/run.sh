#!/usr/bin/env bash
# Builds the fuzz harnesses and runs each (or those named) until FUZZ_RUNS inputs or FUZZ_SECONDS pass.
#   Fuzz/run.sh [harness…]        e.g. Fuzz/run.sh fuzz-store-protocol
# New interesting inputs go to .build/fuzz-corpus/<harness>; the committed seeds and regressions in
# Fuzz/corpus/<harness> are read every run. A crash, sanitizer report, hang (>10 s per input) or an
# allocation over 2 GiB fails the run and leaves the input in .build/fuzz-crashes/. Prints one line per harness.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${FUZZ_RUNS:-1000000}
seconds=${FUZZ_SECONDS:-1800}
# SwiftPM keeps a path dependency's build plan: a file added to Tandem since the last fuzz build would be
# missing from it ("cannot find … in scope"), so the plan is made afresh (the objects are kept).
rm -f Fuzz/.build/release.yaml
swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld >&2
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || mapfile -t harnesses < <(ls Fuzz/corpus)
mkdir -p .build/fuzz-crashes
failed=0
printf '%-24s %12s %8s %10s %s\n' harness inputs seconds corpus result
for harness in "${harnesses[@]}"; do
  mkdir -p ".build/fuzz-corpus/$harness"
  log=".build/fuzz-crashes/$harness.log"
  start=$(date +%s)
  # The Swift backtracer would hang on a crash under libFuzzer; libFuzzer prints the stack itself. Leak
  # checking is off: the one-time initialisation of a global Regex (the GPT-2 pre-tokenizer pattern) is
  # reported as a leak because the runtime reaches it through pointers LeakSanitizer cannot follow.
  if SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "Fuzz/.build/release/$harness" -runs="$runs" -max_total_time="$seconds" -timeout=10 -detect_leaks=0 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=".build/fuzz-crashes/$harness-" \
      ".build/fuzz-corpus/$harness" "Fuzz/corpus/$harness" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log)"
    failed=1
  fi
  inputs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(ls ".build/fuzz-corpus/$harness" | wc -l)
  printf '%-24s %12s %8s %10s %s\n' "$harness" "${inputs:-?}" "$(($(date +%s) - start))" "$corpus" "$result"
done
exit $failed
