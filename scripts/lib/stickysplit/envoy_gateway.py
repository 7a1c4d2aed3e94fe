"""What Envoy Gateway hands its Envoy for an EnvoyExtensionPolicy's Wasm
extension, built here from the manifests, and an Envoy that takes it the way
an Envoy Gateway proxy does: the listener (LDS) and its route table (RDS)
from files, the module fetched over HTTP from a server that stands in for
Envoy Gateway's own. The facts come from Envoy Gateway's source, v1.5 to
v1.9 (docs/envoy-gateway.md, "Delivered as Envoy Gateway delivers it"):

- the filter sits in the listener, one per `spec.wasm[i]`, named
  `envoy.filters.http.wasm/envoyextensionpolicy/<ns>/<policy>/wasm/<i>`,
  `disabled: true`; each route in the policy's scope enables it with an
  empty `envoy.config.route.v3.FilterConfig` in `typed_per_filter_config`;
- `vm_id` is the IR name (`envoyextensionpolicy/<ns>/<policy>/wasm/<i>`),
  `config.name` is `name` or the IR name, `root_id` only when `rootID` is
  set, `fail_open` the legacy boolean, `host_env_keys` = `env.hostKeys`;
- `configuration` is a StringValue holding `config` as the API server
  prints it;
- the code is `remote`, fetched from Envoy Gateway's HTTP server with the
  sha256 of the module Envoy Gateway cached; Envoy Gateway itself pulls the
  image and checks `image.sha256` against the image digest: a module it
  cannot fetch or verify makes the routes in scope answer 500, unless the
  failing entry has `failOpen: true` (then the entry is left out);
- an edit of `config` is a new listener (no ECDS), so Envoy drains the old
  listener's connections.
"""

import base64
import copy
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import tarfile
import threading
import time
from pathlib import Path

from . import envoy
from .istio import FetchFailed, build_layout, go_json, go_number
from .metrics import NeverHeld, until
from .paths import envoy_bin

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
WASM_CLUSTER = "wasm_cluster"
# Envoy Gateway's own namespace and the port of its Wasm HTTP server
EG_NAMESPACE = "envoy-gateway-system"
EG_WASM_PORT = 18002
# What Envoy Gateway's proxies run with (internal/infrastructure/common/proxy_args.go)
DRAIN_ARGS = ("--drain-strategy", "immediate", "--drain-time-s", "60")
FILTER_PREFIX = "envoy.filters.http.wasm/"

# The newest Envoy Gateway release that ships each Envoy line
# (api/v1alpha1/shared_types.go); main (Envoy dev, 1.40 here) delivers Wasm
# as v1.9.0 does.
EG_OF_ENVOY_LINE = {"1.35": "1.5.9", "1.36": "1.6.7", "1.37": "1.7.5", "1.38": "1.8.3", "1.39": "1.9.0"}
EG_MAIN = "1.9.0"


def eg_for_envoy(envoy_version):
    """The Envoy Gateway release whose proxy runs the Envoy line of
    `envoy_version` (e.g. '1.36.4' -> '1.6.7'; a newer line -> main)."""
    return EG_OF_ENVOY_LINE.get(".".join(str(envoy_version).split(".")[:2]), EG_MAIN)


@functools.lru_cache(maxsize=None)
def envoy_version():
    """The running Envoy's version, e.g. '1.40.0'."""
    out = subprocess.run([envoy_bin(), "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"version: [0-9a-f]+/(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else "0.0.0"


def _version(text):
    return tuple(int(x) for x in str(text).split(".")[:3])


def api_server_json(value):
    """A JSON value as the Kubernetes API server prints it (Go's
    encoding/json over the stored object): as jsonpb prints, but integers as
    integers."""
    def number(x):
        if isinstance(x, int):
            return str(x)
        # YAML's 80.0 is stored as the number 80: no ".0" comes back
        return str(int(x)) if x.is_integer() and abs(x) < 2**63 else go_number(x)
    return go_json(value, number)


def ir_name(policy, index):
    """Envoy Gateway's IR name of `spec.wasm[index]`: also the vm_id."""
    meta = policy["metadata"]
    return f"envoyextensionpolicy/{meta.get('namespace', 'default')}/{meta['name']}/wasm/{index}"


def filter_name(policy, index):
    return FILTER_PREFIX + ir_name(policy, index)


def image_ref(url):
    """An Image code URL as Envoy Gateway's cache keys it: `oci://` in
    front, `:latest` when it has neither a tag nor a digest."""
    ref = url if url.startswith("oci://") else f"oci://{url}"
    last = ref[len("oci://"):].rsplit("/", 1)[-1]
    if "@" not in ref and ":" not in last:
        ref += ":latest"
    return ref


class Registry:
    """What Envoy Gateway's Wasm cache can reach: OCI images (the layouts
    scripts/package-oci writes) by reference, and HTTP URLs by their body.
    fetch() does what the cache does for sticky-split: pulls, checks the
    policy's sha256 (the image digest for an image, the module's for HTTP),
    unwraps plugin.wasm, checks the Wasm magic; returns the module bytes."""

    def __init__(self, images=None, http=None):
        self.images = {image_ref(url): Path(layout) for url, layout in (images or {}).items()}
        self.http = dict(http or {})

    def fetch(self, code):
        if code["type"] == "Image":
            image = code["image"]
            ref = image_ref(image["url"])
            layout = self.images.get(ref)
            if layout is None:
                raise FetchFailed(f"{ref}: cannot pull the image (not in this registry)")
            index = json.loads((layout / "index.json").read_text())
            digest = index["manifests"][0]["digest"]
            if image.get("sha256") and digest != f"sha256:{image['sha256']}":
                raise FetchFailed(f"{ref}: image digest {digest} is not image.sha256 {image['sha256']}")
            manifest = json.loads(self._blob(layout, digest))
            layer = gzip.decompress(self._blob(layout, manifest["layers"][0]["digest"]))
            with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
                module = tar.extractfile("plugin.wasm").read()
        else:
            url = code["http"]["url"]
            if url not in self.http:
                raise FetchFailed(f"{url}: cannot fetch")
            module = self.http[url]
            want = code["http"].get("sha256")
            if want and hashlib.sha256(module).hexdigest() != want:
                raise FetchFailed(f"{url}: sha256 of the module is not http.sha256 {want}")
        if module[:4] != b"\0asm":
            raise FetchFailed("the module is not Wasm (no \\0asm magic)")
        return module

    @staticmethod
    def _blob(layout, digest):
        return (layout / "blobs/sha256" / digest.split(":", 1)[1]).read_bytes()


class ModuleServer:
    """Envoy Gateway's Wasm HTTP server: serves the modules it cached, at
    `/<p>.wasm` with p the padded base64url of sha256(original URL + salt).
    Runs in a thread on a port of its own (read back, never chosen); counts
    the fetches; `broken` makes it answer 404 (a module it cannot serve)."""

    def __init__(self, salt="sticky-split-test-salt"):
        self.salt = salt
        self.modules = {}  # path -> bytes
        self.fetches = []  # paths fetched, in order
        self.broken = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = None if server.broken else server.modules.get(self.path)
                server.fetches.append(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass  # Envoy's fetches are counted, not printed

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def path_for(self, original_url):
        digest = hashlib.sha256((original_url + self.salt).encode()).digest()
        return "/" + base64.urlsafe_b64encode(digest).decode() + ".wasm"

    def publish(self, original_url, module):
        """Caches `module` for `original_url`; (serving URI, sha256)."""
        path = self.path_for(original_url)
        self.modules[path] = module
        uri = f"http://envoy-gateway.{EG_NAMESPACE}.svc.cluster.local:{EG_WASM_PORT}{path}"
        return uri, hashlib.sha256(module).hexdigest()

    def cluster(self):
        """Envoy Gateway's `wasm_cluster`, pointing here (in Envoy Gateway:
        DNS to its Service, HTTP/2 and mTLS; plain HTTP/1.1 here)."""
        return envoy.static_cluster(WASM_CLUSTER, self.port)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- Gateway API to Envoy routes, as Envoy Gateway translates them ----

def _ns(doc):
    return doc["metadata"].get("namespace", "default")


def _key(doc):
    return (_ns(doc), doc["metadata"]["name"])


def listener_name(gateway, listener):
    return f"{_ns(gateway)}/{gateway['metadata']['name']}/{listener['name']}"


def attached(route, gateway, listener):
    for ref in route["spec"].get("parentRefs", []):
        if ref.get("kind", "Gateway") != "Gateway":
            continue
        if (ref.get("namespace", _ns(route)), ref["name"]) != _key(gateway):
            continue
        if ref.get("sectionName") in (None, listener["name"]):
            return True
    return False


def _path_match(path):
    kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
    if kind == "Exact":
        return {"path": value}
    if kind == "RegularExpression":
        return {"safe_regex": {"regex": value}}
    return {"prefix": "/"} if value == "/" else {"path_separated_prefix": value.rstrip("/")}


def _header_match(h):
    if h.get("type", "Exact") == "RegularExpression":
        return {"name": h["name"], "string_match": {"safe_regex": {"regex": h["value"]}}}
    return {"name": h["name"], "string_match": {"exact": h["value"]}}


def _sort_key(item):
    """Envoy Gateway's route order: Exact > RegularExpression > PathPrefix,
    longer paths first, then more header matches (the method counts as
    one), then more query matches; the sort is stable."""
    match = item["gateway_api_match"]
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    rank = {"Exact": 0, "RegularExpression": 1}.get(path.get("type", "PathPrefix"), 2)
    headers = len(match.get("headers", [])) + (1 if match.get("method") else 0)
    return (rank, -len(path.get("value", "/")), -headers, -len(match.get("queryParams", [])))


def translate_routes(gateway, listener, routes):
    """[route entry] for the HTTPRoutes attached to `listener`: each with
    its Envoy route (`name`, `match`, `route.cluster`), the rule it came
    from (HTTPRoute key, rule index, rule name) and the Service it sends to."""
    entries = []
    for hr in routes:
        if not attached(hr, gateway, listener):
            continue
        ns, name = _key(hr)
        hosts = hr["spec"].get("hostnames") or ["*"]
        for i, rule in enumerate(hr["spec"].get("rules", [])):
            refs = rule.get("backendRefs", [])
            cluster = f"httproute/{ns}/{name}/rule/{i}"
            for j, match in enumerate(rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]):
                for host in hosts:
                    m = _path_match(match.get("path") or {"type": "PathPrefix", "value": "/"})
                    headers = [_header_match(h) for h in match.get("headers", [])]
                    if match.get("method"):
                        headers.append({"name": ":method", "string_match": {"exact": match["method"]}})
                    if headers:
                        m["headers"] = headers
                    if match.get("queryParams"):
                        m["query_parameters"] = [{"name": q["name"], "string_match": {"exact": q["value"]}}
                                                 for q in match["queryParams"]]
                    entries.append({
                        "route": {"name": f"httproute/{ns}/{name}/rule/{i}/match/{j}/{host.replace('.', '_')}",
                                  "match": m, "route": {"cluster": cluster}},
                        "gateway_api_match": match, "host": host,
                        "httproute": (ns, name), "rule": i, "rule_name": rule.get("name"),
                        "cluster": cluster,
                        "service": (refs[0].get("namespace", ns), refs[0]["name"]) if refs else None,
                    })
    return sorted(entries, key=_sort_key)


# ---- which policy covers which route ----

def _targets(policy):
    refs = list(policy["spec"].get("targetRefs", []))
    if policy["spec"].get("targetRef"):
        refs.append(policy["spec"]["targetRef"])
    return refs


def scope_level(policy, gateway, listener, httproute, rule_name):
    """How specifically `policy` targets a rule (`rule_name`, or None) of
    the HTTPRoute `httproute` ((ns, name)) on the Gateway listener
    `listener`: 3 the rule, 2 the HTTPRoute, 1 the listener, 0 the Gateway;
    None when it does not cover it. targetRefs are local: same namespace."""
    ns = _ns(policy)
    best = None
    for ref in _targets(policy):
        kind, section = ref.get("kind"), ref.get("sectionName")
        level = None
        if kind == "HTTPRoute" and (ns, ref["name"]) == httproute:
            if section is None:
                level = 2
            elif rule_name is not None and section == rule_name:
                level = 3
        elif kind == "Gateway" and (ns, ref["name"]) == _key(gateway):
            if section is None:
                level = 0
            elif section == listener["name"]:
                level = 1
        if level is not None and (best is None or level > best):
            best = level
    return best


def _age(policy):
    meta = policy["metadata"]
    return (meta.get("creationTimestamp", ""), _ns(policy), meta["name"])


def policy_for(policies, gateway, listener, httproute, rule_name):
    """The one policy that applies to a rule: the most specific target
    wins; at one level the oldest creationTimestamp, then ns/name."""
    found = [(scope_level(p, gateway, listener, httproute, rule_name), p) for p in policies]
    found = [(level, p) for level, p in found if level is not None]
    if not found:
        return None
    top = max(level for level, _ in found)
    return min((p for level, p in found if level == top), key=_age)


# ---- the filter ----

def wasm_filter(policy, index, uri, sha256, eg=EG_MAIN):
    """The disabled HTTP filter Envoy Gateway puts in the listener for
    `spec.wasm[index]`, its code served at `uri` with `sha256`."""
    entry = policy["spec"]["wasm"][index]
    name = ir_name(policy, index)
    remote = {"http_uri": {"uri": uri, "cluster": WASM_CLUSTER, "timeout": "10s"}, "sha256": sha256}
    # Envoy Gateway v1.8.3 and v1.9.0 ask for 10 retries (#9462); before,
    # Envoy's default applies: one retry
    if _version(eg) >= (1, 8, 3):
        remote["retry_policy"] = {"retry_back_off": {"base_interval": "1s", "max_interval": "30s"},
                                  "num_retries": 10}
    vm = {"vm_id": name, "runtime": "envoy.wasm.runtime.v8", "code": {"remote": remote}}
    keys = (entry.get("env") or {}).get("hostKeys") or []
    if keys:
        vm["environment_variables"] = {"host_env_keys": list(keys)}
    config = {"name": entry.get("name") or name, "vm_config": vm,
              "configuration": {"@type": STRING_VALUE,
                                "value": "" if entry.get("config") is None else api_server_json(entry["config"])}}
    if entry.get("rootID"):
        config["root_id"] = entry["rootID"]
    if entry.get("failOpen"):
        config["fail_open"] = True
    return {"name": FILTER_PREFIX + name, "disabled": True, "typed_config": {"@type": WASM_TYPE, "config": config}}


def build_wasms(policy, registry, server, eg=EG_MAIN):
    """Envoy Gateway's buildWasms for one policy: ([(index, filter)], error
    or None, fail_open): each entry's module fetched (and checked) by the
    registry, then published on the module server. An entry that fails is
    left out; the policy fails open only if every failing entry has failOpen."""
    filters, errors, fail_close = [], [], False
    for i, entry in enumerate(policy["spec"].get("wasm", [])):
        code = entry["code"]
        try:
            module = registry.fetch(code)
        except FetchFailed as e:
            errors.append(f"wasm[{i}]: {e}")
            fail_close |= not entry.get("failOpen", False)
            continue
        original = image_ref(code["image"]["url"]) if code["type"] == "Image" else code["http"]["url"]
        uri, sha256 = server.publish(original, module)
        filters.append((i, wasm_filter(policy, i, uri, sha256, eg)))
    error = "; ".join(errors) or None
    return filters, error, error is not None and not fail_close


def translate(docs, registry, server, eg=EG_MAIN, address=None):
    """(listeners, route configs, entries) for the Gateway in `docs` with
    its HTTPRoutes and EnvoyExtensionPolicies, as Envoy Gateway's translator
    builds them; each entry also says which policy covers it and whether it
    answers 500 (a policy whose module failed, without failOpen)."""
    gateways = [d for d in docs if d["kind"] == "Gateway"]
    if len(gateways) != 1:
        raise ValueError(f"expected one Gateway, found {len(gateways)}")
    gateway = gateways[0]
    routes = [d for d in docs if d["kind"] == "HTTPRoute"]
    policies = [d for d in docs if d["kind"] == "EnvoyExtensionPolicy"]
    built = {_key(p): build_wasms(p, registry, server, eg) for p in policies}
    listeners, route_configs, all_entries = [], [], []
    for gl in gateway["spec"]["listeners"]:
        name = listener_name(gateway, gl)
        entries = translate_routes(gateway, gl, routes)
        filters = {}
        for entry in entries:
            policy = policy_for(policies, gateway, gl, entry["httproute"], entry["rule_name"])
            entry["policy"] = policy
            if policy is None:
                continue
            wasms, error, fail_open = built[_key(policy)]
            entry["error"] = error
            if error and not fail_open:
                entry["route"].pop("route")
                entry["route"]["direct_response"] = {"status": 500}
                continue
            for index, f in wasms:
                filters[f["name"]] = (index, f)
                entry["route"].setdefault("typed_per_filter_config", {})[f["name"]] = {
                    "@type": FILTER_CONFIG, "config": {}}
        # Wasm filters sit at 200 + their index in the chain; ties by name
        chain = [f for _, f in sorted(filters.values(), key=lambda x: (x[0], x[1]["name"]))]
        port = gl["port"] + 10000 if gl["port"] < 1024 else gl["port"]
        route_configs.append({
            "@type": ROUTE_CONFIG_TYPE, "name": name, "ignore_port_in_host_matching": True,
            "virtual_hosts": [{"name": f"{name}/{host.replace('.', '_')}", "domains": [host],
                               "routes": [e["route"] for e in entries if e["host"] == host]}
                              for host in dict.fromkeys(e["host"] for e in entries)],
        })
        listeners.append({
            "@type": LISTENER_TYPE, "name": name,
            "address": address or {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": envoy.HCM, "stat_prefix": f"http-{port}",
                "rds": {"route_config_name": name, "config_source": {"resource_api_version": "V3", "ads": {}}},
                "http_filters": [*chain, envoy.ROUTER]}}]}],
        })
        all_entries += entries
    return listeners, route_configs, all_entries


def write_resources(path, resources, version):
    """Moves a DiscoveryResponse holding `resources` onto `path`: Envoy
    reloads a watched directory's file on a move into it, never on a write."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps({"version_info": str(version), "resources": resources}))
    os.replace(tmp, path)


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
        services = {_key(d): d for d in docs if d["kind"] == "Service"}
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
            "dynamic_resources": {"lds_config": self._source(self.lds)},
            "static_resources": {"listeners": backend_listeners, "clusters": clusters},
        }
        self.envoy = envoy.Envoy(config=self.bootstrap, workdir=self.dir, concurrency=concurrency,
                                 env=host_env, args=DRAIN_ARGS)

    def _source(self, path):
        """A config source reading `path`, reloaded when a file is moved
        into its directory."""
        return {"resource_api_version": "V3", "path_config_source": {
            "path": str(path), "watched_directory": {"path": str(self.dir)}}}

    def push(self, docs):
        """Writes what Envoy Gateway would send for `docs`: the route tables
        first, then the listeners (as ADS orders them), with the gateway
        listener on 127.0.0.1 port 0 (Envoy picks the port; an update with
        the same address keeps the socket)."""
        self.docs = copy.deepcopy(docs)
        listeners, routes, self.entries = translate(self.docs, self.registry, self.server, self.eg,
                                                    address=envoy.address(0))
        for listener in listeners:
            listener["filter_chains"][0]["filters"][0]["typed_config"]["rds"]["config_source"] = self._source(self.rds)
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
