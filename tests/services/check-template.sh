#!/usr/bin/env bash
# Lints template.yaml offline with cfn-lint and `sam validate --lint`
# (both from the venv `tests/services/aws.sh install` creates). Quiet on success.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
[[ -x "$VENV/bin/cfn-lint" && -x "$VENV/bin/sam" ]] || {
  echo "check-template.sh: run tests/services/aws.sh install first" >&2
  exit 1
}
cd "$ROOT"
export SAM_CLI_TELEMETRY=0
# sam validate --lint needs some region to resolve pseudo parameters; nothing is contacted.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

"$VENV/bin/cfn-lint" template.yaml
out="$("$VENV/bin/sam" validate --lint --template template.yaml --config-file infra/samconfig.toml 2>&1)" || {
  echo "$out" >&2
  exit 1
}
# Queues, consumers and leases agree (visibility, maxReceiveCount, message size, payload expiry).
"$VENV/bin/python" tests/services/check_stack.py template.yaml
