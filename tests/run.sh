#!/usr/bin/env bash
# Runs every test from a fresh clone: unit tests, adapter tests against real
# local servers (DynamoDB Local, moto, aiosmtpd), end-to-end tests against
# `switchboard serve`, the FAQ benchmark figures, the SAM template checks and
# the Lambda builds. Installs what it needs; stops what it starts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH="${SWITCHBOARD_FAQ_BENCH:-$ROOT/../shared/faq-bench}"

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "Python tools (.venv) and AWS stand-ins"
tests/services/aws.sh install
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/services/requirements.txt
tests/services/aws.sh start
trap 'tests/services/aws.sh stop' EXIT
# shellcheck disable=SC1091
. .cache/aws-env
export SWITCHBOARD_PYTHON="$ROOT/.venv/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"

step "Build"
cargo build --workspace --bins --locked
export SWITCHBOARD_BIN="$ROOT/target/debug/switchboard"

step "Tests: unit, adapters, end to end"
cargo test --workspace --locked
# The FAQ crate with its embedding tables (off in the workspace build, so that
# the Lambda binaries do not carry them).
cargo test -p switchboard-faq --features embeddings --locked
# "Asks for a person": precision and recall on our labelled sentences, printed.
cargo test -p switchboard-domain --locked --test asks_for_person -- --nocapture --test-threads 1
# The AWS-enabled build of the command: `kb import --dynamodb-table`.
cargo test -p switchboard --features aws --locked --test kb_dynamodb

if [[ -d "$BENCH" ]]; then
  # Twice: the debug build (overflow checks and debug assertions on) and the
  # optimised one the figures come from.
  cargo build --profile eval -p switchboard --locked
  for build in debug eval; do
    step "FAQ benchmark, $build build (dev parts of $BENCH)"
    for set in stackfaq clinc150 banking77 cic cic_open; do
      [[ -f "$BENCH/$set/dev.jsonl" ]] || continue
      extra=()
      [[ "$set" == stackfaq ]] && extra=(--index-answers)
      echo "--- $set ($build)"
      "target/$build/switchboard" faq eval --kb "$BENCH/$set/kb.jsonl" --queries "$BENCH/$set/dev.jsonl" "${extra[@]}"
    done
  done
else
  step "FAQ benchmark skipped: no $BENCH"
fi

if [[ -x tests/services/check-template.sh ]]; then
  step "SAM template checks"
  tests/services/check-template.sh
fi

if [[ -x tests/services/build-lambdas.sh ]] && compgen -G "functions/*/Cargo.toml" >/dev/null; then
  step "Lambda builds (arm64, release)"
  tests/services/build-lambdas.sh
fi

step "All tests passed in $(( $(date +%s) - started )) s"
