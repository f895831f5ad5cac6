#!/usr/bin/env bash
# Cross-compiles every Lambda function binary (the bin targets of the crates
# under functions/) for arm64 with cargo-lambda (from the venv of
# `tests/services/aws.sh install`, which brings zig as the linker), in one
# cargo invocation so that every dependency compiles once, then prints each
# bootstrap's size and fails if one is larger than the budget
# (SWITCHBOARD_LAMBDA_MAX_MIB, default 7.62 MiB = 7,990,149 bytes: issue 14's
# "8 MB" in either reading). Measured 2026-11-29 (bytes): api-authorizer
# 3,944,472; conversation-worker 6,322,296; escalation-notifier 6,003,368;
# ingress-email 7,210,384; ingress-im 7,211,088; ingress-social 7,210,384;
# outbound-sender 6,942,184. Honours CARGO_TARGET_DIR (default: target/).
#
#   tests/services/build-lambdas.sh            # all function binaries
#   tests/services/build-lambdas.sh ingress-im # only these
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
TARGET=aarch64-unknown-linux-gnu

die() {
  echo "build-lambdas.sh: $*" >&2
  exit 1
}

[[ -x "$VENV/bin/cargo-lambda" ]] || die "run tests/services/aws.sh install first"
export PATH="$VENV/bin:$PATH"
cd "$ROOT"

# The standard library for the target; rustup is the toolchain's own client.
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  rustup target add "$TARGET" >/dev/null 2>&1 || die "could not add the $TARGET target with rustup"
fi

# Bin targets of the packages under functions/, as "bin package".
mapfile -t ALL_TARGETS < <(
  cargo metadata --no-deps --format-version 1 | "$VENV/bin/python" -c '
import json, os, sys
root = os.path.realpath(sys.argv[1])
for package in json.load(sys.stdin)["packages"]:
    manifest = os.path.realpath(package["manifest_path"])
    if not manifest.startswith(os.path.join(root, "functions") + os.sep):
        continue
    for target in package["targets"]:
        if "bin" in target["kind"]:
            print(target["name"], package["name"])
' "$ROOT"
)
declare -A PACKAGE_OF=()
ALL_BINS=()
for line in "${ALL_TARGETS[@]}"; do
  ALL_BINS+=("${line%% *}")
  PACKAGE_OF["${line%% *}"]="${line#* }"
done
if [[ $# -gt 0 ]]; then
  BINS=("$@")
else
  BINS=("${ALL_BINS[@]}")
fi
[[ ${#BINS[@]} -gt 0 ]] || die "no function binaries under functions/ (no workspace crate there has a bin target)"

# `--package` for each function: features are then unified over the
# functions only, not over the whole workspace (the local command's
# `switchboard-app/local`, SQLite, clap, ...), which keeps what a function
# links, and what this build compiles, to the functions' own needs.
args=()
for bin in "${BINS[@]}"; do
  [[ -n "${PACKAGE_OF[$bin]:-}" ]] || die "$bin is not a function binary under functions/"
  args+=(--package "${PACKAGE_OF[$bin]}" --bin "$bin")
done
# Cargo's own lines ("Compiling ...") are the progress of this long step.
started=$(date +%s)
cargo lambda build --release --arm64 --locked "${args[@]}" || die "cargo lambda build failed"
echo "built in $(( $(date +%s) - started )) s"

target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
max_mib="${SWITCHBOARD_LAMBDA_MAX_MIB:-7.62}"
max_bytes="$(awk -v m="$max_mib" 'BEGIN { printf "%d", m * 1048576 }')"
printf '%-22s %12s %9s\n' binary bytes MiB
too_large=()
for bin in "${BINS[@]}"; do
  bootstrap="$target_dir/lambda/$bin/bootstrap"
  [[ -f "$bootstrap" ]] || die "missing $bootstrap after the build"
  bytes="$(wc -c <"$bootstrap" | tr -d ' ')"
  printf '%-22s %12s %9s\n' "$bin" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')"
  (( bytes <= max_bytes )) || too_large+=("$bin")
done
[[ ${#too_large[@]} -eq 0 ]] || die "larger than $max_mib MiB: ${too_large[*]}"
