"""An Envoy that takes an EnvoyExtensionPolicy the way an Envoy Gateway
proxy does: the listener (LDS) and its route table (RDS) from files (standing
in for delta ADS), the module fetched over HTTP from a ModuleServer, Envoy's
drain flags as Envoy Gateway sets them; its lifecycle and live updates. An
edit of `config` is a new listener (no ECDS), so Envoy drains the old
listener's connections.
"""

import copy
import functools
import json
import os
import re
import time
from pathlib import Path

from .. import envoy
from ..metrics import NeverHeld, until
from ..oci import build_layout
from ..paths import envoy_bin
from ..proc import run
from .module_server import ModuleServer
from .registry import Registry
from .routes import key_of
from .translate import eg_for_envoy, translate

# What Envoy Gateway's proxies run with (internal/infrastructure/common/proxy_args.go)
DRAIN_ARGS = ("--drain-strategy", "immediate", "--drain-time-s", "60")


@functools.lru_cache(maxsize=None)
def envoy_version():
    """The running Envoy's version, e.g. '1.40.0'."""
    out = run([envoy_bin(), "--version"], timeout=60).stdout
    m = re.search(r"version: [0-9a-f]+/(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else "0.0.0"


def write_resources(path, resources, version):
    """Moves a DiscoveryResponse holding `resources` onto `path`: Envoy
    reloads a watched directory's file on a move into it, never on a write."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps({"version_info": str(version), "resources": resources}))
    os.replace(tmp, path)


def file_source(path):
    """A config source reading `path`, reloaded when a file is moved into its
    directory (as `write_resources` does)."""
    path = Path(path)
    return {"resource_api_version": "V3", "path_config_source": {
        "path": str(path), "watched_directory": {"path": str(path.parent)}}}


def listener_from_file(config, lds, name="gateway"):
    """Takes listener `name` out of a bootstrap's static resources and has
    Envoy read its listeners from the file `lds` instead (write them with
    `write_resources`): returns the listener, typed for a discovery response.
    A push of a changed listener then drains the old one's connections."""
    res = config["static_resources"]
    [listener] = [l for l in res["listeners"] if l["name"] == name]
    res["listeners"].remove(listener)
    listener["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener"
    config["node"] = {"id": name, "cluster": name}
    config["dynamic_resources"] = {"lds_config": file_source(lds)}
    return listener


class EnvoyGatewayProxy:
    """An Envoy set up as an Envoy Gateway proxy receives the policy: no
    static listener; the Gateway's listeners from `<dir>/lds.json` and their
    route tables from `<dir>/rds.json` (file-based dynamic config, standing
    in for delta ADS), the module from a ModuleServer through `wasm_cluster`,
    Envoy run with Envoy Gateway's drain flags. One sample backend per
    Service the routes send to, answering as its `pool` label (or the
    Service name) says; with `strict_backends` a pool's backend answers 421
    when the route header does not name its pool (a request the filter did
    not route), a Service without a pool label answers everything."""

    def __init__(self, workdir, docs, registry=None, host_env=None, eg=None, concurrency=2, strict_backends=True,
                 route_header="x-sticky-split-pool"):
        self.dir = Path(workdir) / f"eg-{time.monotonic_ns()}"
        self.dir.mkdir(parents=True)
        self.eg = eg or eg_for_envoy(envoy_version())
        if registry is None:
            layout, _ = build_layout(self.dir)
            registry = Registry(images={code["image"]["url"]: layout for code in _image_codes(docs)})
        self.registry = registry
        self.server = ModuleServer()
        self.version = 1
        self.docs = copy.deepcopy(docs)
        self.route_header = route_header
        self.lds, self.rds = self.dir / "lds.json", self.dir / "rds.json"
        services = {key_of(d): d for d in docs if d["kind"] == "Service"}
        listeners, _, entries = translate(self.docs, self.registry, self.server, self.eg)
        self.listener = listeners[0]["name"]
        # a sample backend per Service the routes reach, and the rule clusters to them
        self.backends = {}
        clusters, backend_listeners = [self.server.cluster()], []
        for entry in entries:
            svc = entry["service"]
            if svc not in self.backends:
                label = ((services.get(svc) or {}).get("spec", {}).get("selector") or {}).get("pool")
                at = envoy.pipe(f"svc-{svc[1]}")
                self.backends[svc] = (label or svc[1], at)
                backend_listeners.append(envoy.sample_backend(label or svc[1], at, route_header=route_header,
                                                              any_route_header=not (strict_backends and label)))
                backend_listeners[-1]["name"] = f"backend-{svc[0]}-{svc[1]}"
            if entry["cluster"] not in {c["name"] for c in clusters}:
                clusters.append(envoy.static_cluster(entry["cluster"], self.backends[svc][1]))
        self.push(self.docs)
        self.bootstrap = {
            "node": {"id": "envoy-gateway-proxy", "cluster": "envoy-gateway-proxy"},
            "admin": {"address": envoy.address(0)},
            "dynamic_resources": {"lds_config": file_source(self.lds)},
            "static_resources": {"listeners": backend_listeners, "clusters": clusters},
        }
        self.envoy = envoy.Envoy(config=self.bootstrap, workdir=self.dir, concurrency=concurrency,
                                 env=host_env, args=DRAIN_ARGS)

    def push(self, docs):
        """Writes what Envoy Gateway would send for `docs`: the route tables
        first, then the listeners (as ADS orders them), with the gateway
        listener on 127.0.0.1 port 0 (Envoy picks the port; an update with
        the same address keeps the socket)."""
        self.docs = copy.deepcopy(docs)
        listeners, routes, self.entries = translate(self.docs, self.registry, self.server, self.eg,
                                                    address=envoy.address(0))
        for listener in listeners:
            listener["filter_chains"][0]["filters"][0]["typed_config"]["rds"]["config_source"] = file_source(self.rds)
        write_resources(self.rds, routes, self.version)
        write_resources(self.lds, listeners, self.version)
        self.version += 1

    @property
    def gateway(self):
        """The port the gateway listener is bound to (Envoy chose it)."""
        return self.envoy.ports[self.listener]

    def listener_counts(self):
        """Envoy's listener manager counters: listener_modified, listener_in_place_updated,
        total_listeners_warming, total_listeners_draining, lds update_success/rejected."""
        stats = self.envoy.stats(r"^listener_manager\.")
        return {name.split(".", 1)[1]: value for name, value in stats.items()}

    def apply(self, docs, timeout=20):
        """Pushes `docs` and waits until Envoy has the new listener active
        ('updated'), rejected it ('rejected'), or left it warming past the
        timeout ('warming')."""
        before = self.listener_counts()
        self.push(docs)

        def outcome(now):
            if now.get("lds.update_rejected", 0) > before.get("lds.update_rejected", 0):
                return "rejected"
            changed = sum(now.get(k, 0) - before.get(k, 0) for k in ("listener_modified", "listener_in_place_updated"))
            if now.get("lds.update_success", 0) > before.get("lds.update_success", 0) and (
                    changed == 0 or now.get("total_listeners_warming", 0) == 0):
                return "updated"
            return None

        try:
            now = until(self.listener_counts, lambda now: outcome(now) is not None, timeout, 0.05,
                        "the listener manager counters")
        except NeverHeld:
            return "warming"
        return outcome(now)

    # how long Envoy may take to become ready: it waits for the listener,
    # which waits for the module
    envoy_start_timeout = 60

    def __enter__(self):
        self.server.start()
        try:
            self.envoy.start(timeout=self.envoy_start_timeout)
        except BaseException:
            self.server.stop()
            raise
        if self.listener not in self.envoy.ports:
            log = self.envoy.log_tail()
            self.__exit__(None, None, None)
            raise RuntimeError(f"the gateway listener {self.listener!r} is not serving:\n{log}")
        return self

    def __exit__(self, *exc):
        self.envoy.stop()
        self.server.stop()


def _image_codes(docs):
    return [w["code"] for d in docs if d["kind"] == "EnvoyExtensionPolicy"
            for w in d["spec"].get("wasm", []) if w["code"]["type"] == "Image"]
