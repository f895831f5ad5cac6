#!/usr/bin/env bash
# The browser for the tests that look at pages (the agents' console, the HTML
# report): Debian's Chromium, and playwright-core from npm to drive it, with
# the system Chromium as its executable (no browser download).
#
#   tests/services/browser.sh install   # idempotent; apt-get when chromium is missing
#   tests/services/browser.sh env       # prints the exports the tests read
#
# The tests read SWITCHBOARD_CHROMIUM (the executable) and
# SWITCHBOARD_PLAYWRIGHT (the playwright-core package directory, for
# `require`). Chromium runs headless with --no-sandbox (CI runs as root) and
# without background networking, which a closed network refuses.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BROWSER_DIR="$ROOT/.cache/browser"
PLAYWRIGHT_VERSION=1.49.1

die() {
  echo "browser.sh: $*" >&2
  exit 1
}

chromium_path() {
  local candidate
  for candidate in "${SWITCHBOARD_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    [[ -n "$candidate" && -x "$candidate" ]] && { echo "$candidate"; return 0; }
  done
  return 1
}

install() {
  if ! chromium_path >/dev/null; then
    command -v apt-get >/dev/null || die "no chromium and no apt-get to install it; set SWITCHBOARD_CHROMIUM"
    local as_root=()
    [[ "$(id -u)" == 0 ]] || as_root=(sudo)
    echo "browser.sh: installing Debian's chromium" >&2
    "${as_root[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends \
      chromium fonts-noto-cjk >/dev/null
  fi
  chromium_path >/dev/null || die "chromium is still missing after apt-get"
  if [[ ! -f "$BROWSER_DIR/node_modules/playwright-core/package.json" ]]; then
    command -v npm >/dev/null || die "npm not found"
    mkdir -p "$BROWSER_DIR"
    (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix . --no-audit \
      --no-fund --loglevel=error --no-save "playwright-core@$PLAYWRIGHT_VERSION" </dev/null >/dev/null)
  fi
}

case "${1:-}" in
  install) install ;;
  env)
    chromium="$(chromium_path)" || die "no chromium: run tests/services/browser.sh install"
    echo "export SWITCHBOARD_CHROMIUM=$chromium"
    echo "export SWITCHBOARD_PLAYWRIGHT=$BROWSER_DIR/node_modules/playwright-core"
    ;;
  *) die "usage: browser.sh install|env" ;;
esac
