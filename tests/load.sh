#!/usr/bin/env bash
# The load script: N signed messages from M customers (Telegram and Slack),
# with provider retries mixed in (the same update or event id resent), to a
# real `switchboard serve` on loopback that is killed (SIGKILL) and restarted
# while it works; then it waits for the queues to drain and prints accepted,
# answered, duplicates (sent and dropped), lost and duplicate replies. Exits
# non-zero when a message is lost or answered twice (see the driver,
# tests/src/bin/load.rs, for replies a kill interrupts mid-send).
#
#   tests/load.sh [--messages 300] [--customers 40] [--duplicate-rate 0.1] [--kills 2] [--seed S]
#
# Needs the Python tools of tests/run.sh (.venv, for the SMTP server); uses
# SWITCHBOARD_BIN when set, else builds the binaries as tests/run.sh does.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export SWITCHBOARD_PYTHON="${SWITCHBOARD_PYTHON:-$ROOT/.venv/bin/python}"
if [[ ! -x "$SWITCHBOARD_PYTHON" ]]; then
  echo "load: no Python tools at $SWITCHBOARD_PYTHON (tests/run.sh installs them into .venv)" >&2
  exit 2
fi
# The same build as tests/run.sh (the same targets, so the same features of
# every dependency): neither rebuilds the other's.
cargo build --workspace --bins --tests --examples --locked --features switchboard/aws,switchboard/semantic
export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$TARGET_DIR/debug/switchboard}"
exec "$TARGET_DIR/debug/load" "$@"
