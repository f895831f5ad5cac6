#!/usr/bin/env bash
# Fuzzing: builds the libFuzzer targets of tests/fuzz (a cargo-fuzz project:
# `cargo fuzz run --fuzz-dir tests/fuzz -s none xml` works too) on the stable
# toolchain, seeds their corpora from the repository's test data (the
# channels' contract fixtures, the email corpus, SendGrid's posts, the sample
# knowledge base), runs each target for a bounded time and prints executions,
# coverage and crashes per target. Fails when any target crashes, times out
# (an input over 10 s) or runs out of memory.
#
#   tests/fuzz.sh [SECONDS_PER_TARGET]      (default 60; tests/run.sh uses 10)
#   tests/fuzz.sh --build-only              (tests/run.sh builds beside its tests)
#   FUZZ_TARGETS="xml mime" tests/fuzz.sh   (a subset)
#   FUZZ_JOBS=1 tests/fuzz.sh               (targets at once; default: the cores)
#
# Corpora grow in tests/fuzz/corpus/<target> from run to run; a crash leaves
# its input in tests/fuzz/artifacts/<target>/ and the line to replay it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_ONLY=false
if [[ "${1:-}" == --build-only ]]; then
  BUILD_ONLY=true
  shift
fi
SECONDS_PER_TARGET="${1:-60}"
JOBS="${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}"
FUZZ_DIR=tests/fuzz
PYTHON="${SWITCHBOARD_PYTHON:-python3}"
host="$(rustc -vV | sed -n 's/^host: //p')"

# The instrumentation `cargo fuzz build` asks for (libFuzzer's inline 8-bit
# counters, PC table, compare tracing, stack depth; cfg(fuzzing)), with
# overflow checks and debug assertions as in debug builds and no address
# sanitizer (the code under test is safe Rust; ASan needs nightly and halves
# the speed). These are stable rustc options: no nightly, no RUSTC_BOOTSTRAP,
# and no cargo-fuzz to install. Building for an explicit --target keeps them
# off build scripts and proc macros, as cargo-fuzz does.
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  --cfg fuzzing
  -Cdebug-assertions
  -Coverflow-checks
)
[[ "$host" == *-linux-* ]] && flags+=(-Cllvm-args=-sanitizer-coverage-stack-depth)
started=$(date +%s)
# Not --locked: tests/fuzz/Cargo.lock pins what it has, and a dependency the
# workspace's crates gain later is added to it rather than failing the build.
RUSTFLAGS="${flags[*]}" cargo build --manifest-path "$FUZZ_DIR/Cargo.toml" \
  --release --bins --target "$host" --target-dir "$FUZZ_DIR/target"
bin_dir="$FUZZ_DIR/target/$host/release"
echo "fuzz: targets built in $(( $(date +%s) - started )) s"
$BUILD_ONLY && exit 0

"$PYTHON" "$FUZZ_DIR/seeds.py" "$ROOT" "$FUZZ_DIR/corpus"

all_targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$FUZZ_DIR/Cargo.toml" | grep -vx switchboard-fuzz)
read -r -a targets <<<"${FUZZ_TARGETS:-$(tr '\n' ' ' <<<"$all_targets")}"
max_len() {
  case "$1" in
    mime | multipart) echo 65536 ;;
    webhook_*) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

# One libFuzzer process per target, up to $JOBS at once (each is single-threaded).
run_target() {
  local target="$1" corpus="$FUZZ_DIR/corpus/$1" artifacts="$FUZZ_DIR/artifacts/$1"
  local log="$FUZZ_DIR/artifacts/$1.log" status=0
  mkdir -p "$corpus" "$artifacts"
  # The webhook targets add each channel's own sample request to the corpus.
  SWITCHBOARD_FUZZ_SAMPLES="$corpus" "$bin_dir/$target" "$corpus" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$target")" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  echo "$status" >"$log.status"
}
running=0
for target in "${targets[@]}"; do
  echo "fuzz: $target for $SECONDS_PER_TARGET s"
  run_target "$target" &
  running=$((running + 1))
  if (( running >= JOBS )); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=()
summary=()
for target in "${targets[@]}"; do
  artifacts="$FUZZ_DIR/artifacts/$target"
  log="$FUZZ_DIR/artifacts/$target.log"
  status=$(cat "$log.status" 2>/dev/null || echo 1)
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(find "$artifacts" -type f | wc -l)
  summary+=("$(printf '%-18s %12s %8s %8s %8s %8s' "$target" "${executions:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes")")
  if [[ $status -ne 0 || $crashes -ne 0 ]]; then
    failed+=("$target")
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 || true
    for artifact in "$artifacts"/*; do
      [[ -f "$artifact" ]] && echo "fuzz: replay with: $bin_dir/$target $artifact"
    done
  fi
done

echo
printf '%-18s %12s %8s %8s %8s %8s\n' target executions cov ft corpus crashes
printf '%s\n' "${summary[@]}"
echo "fuzz: ${#targets[@]} targets, $SECONDS_PER_TARGET s each, $JOBS at once, $(( $(date +%s) - started )) s in all (build included)"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $FUZZ_DIR/artifacts/)"
  exit 1
fi
