"""What the integration tests share: starting a gateway, reading what Envoy
says about its Wasm VMs, and checking its log."""

from stickysplit import envoy
from stickysplit.envoy import FLUSH_SECONDS  # noqa: F401 - for the tests

RUNTIME_FAILURE_MARKS = ("panicked", "Function: proxy_on", "wasm trap", "RuntimeError")
LOAD_FAILURE_MARKS = ("Failed to load Wasm", "VM failed")


def start_gateway(workdir, base, plugin=None):
    return envoy.Envoy(base=base, plugin=plugin, workdir=workdir).start()


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
