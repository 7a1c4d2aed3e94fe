"""Integration tests run the built module in a real Envoy (see README)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts/lib"))

from stickysplit import envoy  # noqa: E402


def pytest_sessionstart(session):
    if not envoy.WASM.exists():
        raise pytest.UsageError(f"{envoy.WASM} is missing: run scripts/build (scripts/test does)")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("envoy")


@pytest.fixture(scope="session")
def base_config():
    return envoy.load()


def start_gateway(workdir, base, plugin=None):
    return envoy.Envoy(base=base, plugin=plugin, workdir=workdir).start()


# The filter hands its counters and memory gauge to Envoy on a 1 s tick: wait
# this long after traffic before reading them.
FLUSH_SECONDS = 1.5

RUNTIME_FAILURE_MARKS = ("panicked", "Function: proxy_on", "wasm trap", "RuntimeError")
LOAD_FAILURE_MARKS = ("Failed to load Wasm", "VM failed")


def assert_vm_healthy(gw, load_failures_expected=False):
    """No panic, trap or failed callback in Envoy's log (nor a VM that failed
    to load, unless the test pushed a bad config or module on purpose)."""
    text = gw.log_text()
    marks = RUNTIME_FAILURE_MARKS + (() if load_failures_expected else LOAD_FAILURE_MARKS)
    bad = [line for line in text.splitlines() if any(m in line for m in marks)]
    assert not bad, "\n".join(bad[:10])


def vm_stats(gw):
    """Envoy's counters about wasm VMs: {'created': n, ...} for the V8 runtime."""
    stats = gw.stats(r"^wasm\.envoy\.wasm\.runtime\.v8\.")
    return {name.rsplit(".", 1)[1]: value for name, value in stats.items()}
