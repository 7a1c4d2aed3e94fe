"""Live reconfiguration: an Envoy whose gateway listener comes from a watched
file (file-based LDS), and a load generator that keeps sending requests while
the plugin config is changed."""

import copy
import json
import os
import threading
import time
from pathlib import Path

from . import envoy
from .http import Client

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"


def add_pool_backend(config, name, port):
    """A sample backend listener for pool `name` on `port`, and its cluster."""
    res = config["static_resources"]
    res["listeners"].append(envoy.sample_backend(name, port))
    res["clusters"].append(envoy.static_cluster(name, port))


class LiveGateway:
    """Envoy with backends static and the gateway listener in `lds.json`."""

    def __init__(self, workdir, plugin, extra_pools=("pool3",)):
        self.dir = Path(workdir) / f"live-{time.monotonic_ns()}"
        self.dir.mkdir(parents=True)
        base = envoy.load()
        ports = envoy.free_ports(5 + len(extra_pools))
        mapping = dict(zip(sorted(set(envoy.ports_of(base).values())), ports))
        config = envoy.render(base, plugin=plugin, ports=mapping)
        for i, name in enumerate(extra_pools):
            add_pool_backend(config, name, ports[4 + i])
        res = config["static_resources"]
        self.listener = next(l for l in res["listeners"] if l["name"] == "gateway")
        res["listeners"].remove(self.listener)
        # routes for the extra pools, before the 503 fallback
        routes = self.listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
        for name in extra_pools:
            routes.insert(-1, {"match": {"prefix": "/", "headers": [{"name": "x-sticky-split-pool", "string_match": {"exact": name}}]},
                               "route": {"cluster": name}})
        self.lds = self.dir / "lds.json"
        config["node"] = {"id": "sticky-split-live", "cluster": "sticky-split"}
        config["dynamic_resources"] = {
            "lds_config": {
                "resource_api_version": "V3",
                "path_config_source": {"path": str(self.lds), "watched_directory": {"path": str(self.dir)}},
            }
        }
        self.write_listener(plugin)
        self.envoy = envoy.Envoy(base=config, fixed_ports=True, workdir=self.dir)
        self.gateway = self.listener["address"]["socket_address"]["port_value"]

    def write_listener(self, plugin=None, plugin_raw=None, module=None):
        listener = copy.deepcopy(self.listener)
        [wasm] = envoy.wasm_filters({"l": listener})
        if plugin is not None:
            wasm["configuration"]["value"] = json.dumps(plugin)
        if plugin_raw is not None:
            wasm["configuration"]["value"] = plugin_raw
        if module is not None:
            wasm["vm_config"]["code"]["local"]["filename"] = str(module)
        tmp = self.dir / "lds.json.tmp"
        tmp.write_text(json.dumps({"resources": [dict(listener, **{"@type": LISTENER_TYPE})]}))
        os.replace(tmp, self.lds)  # atomic: Envoy sees the move in the watched directory

    def lds_counts(self):
        stats = self.envoy.stats("listener_manager.lds.update_")
        return {name.rsplit(".", 1)[1]: value for name, value in stats.items()}

    def push(self, timeout=20, **kw):
        """Writes a new listener and waits until Envoy accepted or rejected it;
        returns 'success' or 'rejected'."""
        before = self.lds_counts()
        self.write_listener(**kw)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.lds_counts()
            for k in ("update_success", "update_rejected"):
                if now.get(k, 0) > before.get(k, 0):
                    return k.split("_", 1)[1]
            time.sleep(0.05)
        raise TimeoutError("Envoy did not take the listener update")

    def __enter__(self):
        self.envoy.start()
        deadline = time.monotonic() + 20
        while self.lds_counts().get("update_success", 0) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(self.envoy.log_tail())
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.envoy.stop()


class Load:
    """Threads sending requests on new connections until stopped: a mix of
    new users and users pinned to given pools. Every result is kept with its
    start time, so a test can look at the requests of one config phase."""

    def __init__(self, port, cookie, pinned=("pool1", "pool2"), threads=3, debug_header="x-sticky-split-debug"):
        self.port, self.cookie, self.pinned, self.debug = port, cookie, list(pinned), debug_header
        self.results = []  # (start, kind, status, served_by, reason, error)
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i):
        n = i
        while not self.stop_flag.is_set():
            kind = "new" if n % 2 == 0 else self.pinned[(n // 2) % len(self.pinned)]
            n += 1
            headers = [] if kind == "new" else [("Cookie", f"{self.cookie}={kind}")]
            start = time.monotonic()
            try:
                r = Client(self.port, keepalive=False, timeout=5).get("/", headers)
                reason = (r.header(self.debug) or "").rpartition("reason=")[2]
                item = (start, kind, r.status, r.served_by, reason, None)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                item = (start, kind, None, None, None, repr(e))
            with self.lock:
                self.results.append(item)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=10)

    def between(self, t0, t1):
        with self.lock:
            return [r for r in self.results if t0 <= r[0] < t1]
