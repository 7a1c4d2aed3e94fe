"""What istiod and istio-agent hand a gateway's Envoy for a WasmPlugin or a
TrafficExtension, built here from the manifest (the facts are in docs/istio.md,
"Delivered as Istio delivers it"), and a gateway that takes the filter the
way an Istio gateway does: a placeholder HTTP filter fed by extension config
discovery (ECDS), here from a file.
"""

import copy
import json
import math
import os
import time
from decimal import Decimal
from pathlib import Path

from . import envoy, testbed
from .metrics import NeverHeld, until
from .oci import FetchFailed, build_layout, image_digest, plugin_wasm
from .testbed import ROUTE_HEADER

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
EXTENSION_CONFIG = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"


def version_tuple(istio):
    return tuple(int(x) for x in str(istio).split(".")[:2])


def names(doc, istio="1.30"):
    """(ECDS resource name, Wasm config name) for a WasmPlugin or a
    TrafficExtension `ns/name` under Istio `istio`."""
    ns = doc["metadata"].get("namespace", "default")
    base = f"{ns}.{doc['metadata']['name']}"
    v = version_tuple(istio)
    if doc["kind"] == "TrafficExtension":
        if v < (1, 30):
            raise ValueError("TrafficExtension needs Istio 1.30 or later")
        return f"extensions.istio.io/trafficextension/{base}", base
    if v >= (1, 30):
        translated = f"{base}~istio-translated-wasmplugin"
        return f"extensions.istio.io/trafficextension/{translated}", translated
    if v >= (1, 26):
        return f"extensions.istio.io/wasmplugin/{base}", base
    return f"extenstions.istio.io/wasmplugin/{base}", base  # sic, Istio 1.24 and 1.25


def wasm_spec(doc):
    """The Wasm part of a WasmPlugin's or TrafficExtension's spec."""
    return doc["spec"]["wasm"] if doc["kind"] == "TrafficExtension" else doc["spec"]


def go_number(x):
    """A JSON number as Go's encoding/json prints a float64 (protobuf Struct
    numbers are doubles): shortest digits, exponent form only below 1e-6 or
    from 1e21, a two-digit exponent at least."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{x} is not a JSON number")
    if x == 0:
        return "0"
    r = repr(x)  # shortest round-trip digits
    if 1e-6 <= abs(x) < 1e21:
        text = format(Decimal(r), "f")
        return text[:-2] if text.endswith(".0") else text
    mantissa, _, exp = format(Decimal(r), "E").partition("E")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    sign = "-" if exp.startswith("-") else "+"
    return f"{mantissa.lower()}e{sign}{abs(int(exp)):02d}"


def _go_string(s):
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or ch in "<>&\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value, number):
    """JSON as Go's encoders print it: compact, keys sorted, `<>&` and
    U+2028/9 escaped, other non-ASCII raw; numbers printed by `number`."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return number(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, list):
        return "[" + ",".join(go_json(v, number) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(str(k))}:{go_json(v, number)}" for k, v in sorted(value.items())) + "}"
    raise TypeError(f"not JSON: {value!r}")


def jsonpb(value):
    """A pluginConfig as istiod prints it (legacy golang/protobuf jsonpb of a
    Struct): every number a Go float64."""
    return go_json(value, go_number)


class Agent:
    """istio-agent's fetch, for the images scripts/package-oci builds: an
    `oci://` module is the image in `layout`, accepted when `spec.sha256`
    (if set) is its manifest digest; `file://` is a local file."""

    def __init__(self, layout, cache):
        self.layout, self.cache = Path(layout), Path(cache)

    def fetch(self, url, sha256):
        if url.startswith("file://"):
            path = Path(url[len("file://"):])
            if not path.is_file():
                raise FetchFailed(f"{path}: no such file")
            return path
        if "://" in url and not url.startswith("oci://"):
            raise FetchFailed(f"{url}: only oci:// and file:// are fetched here")
        digest = image_digest(self.layout)
        if sha256 and digest != f"sha256:{sha256}":
            raise FetchFailed(f"{url}: image digest {digest} is not spec.sha256 {sha256}")
        module = plugin_wasm(self.layout)
        if module[:4] != b"\0asm":
            raise FetchFailed(f"{url}: plugin.wasm is not a Wasm module")
        self.cache.mkdir(parents=True, exist_ok=True)
        path = self.cache / f"{digest.split(':')[1]}.wasm"
        path.write_bytes(module)
        return path


def typed_config(doc, agent, istio="1.30"):
    """The ECDS resource's typed config for the manifest `doc`: the Wasm
    filter istiod builds with the module istio-agent fetched, or, when the
    fetch fails, the agent's RBAC stand-in under the same name (allow all
    with FAIL_OPEN, deny all otherwise)."""
    spec = wasm_spec(doc)
    _, plugin_name = names(doc, istio)
    fail = spec.get("failStrategy", "FAIL_CLOSE")
    try:
        path = agent.fetch(spec["url"], spec.get("sha256"))
    except FetchFailed:
        if fail == "FAIL_OPEN":
            return {"@type": RBAC_TYPE, "rules_stat_prefix": "wasm-default-allow"}
        return {"@type": RBAC_TYPE, "rules": {}, "rules_stat_prefix": "wasm-default-deny"}
    vm = {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(path)}}}
    key_values, host_keys = {}, []
    for entry in spec.get("vmConfig", {}).get("env", []):
        if entry.get("valueFrom", "INLINE") == "HOST":
            host_keys.append(entry["name"])
        else:
            key_values[entry["name"]] = entry.get("value", "")
    if spec["url"].startswith("file://"):
        # istiod adds it; the agent strips ISTIO_META_* only when it rewrites remote code
        key_values["ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION"] = doc["metadata"].get("resourceVersion", "1")
    if key_values or host_keys:
        vm["environment_variables"] = {}
        if key_values:
            vm["environment_variables"]["key_values"] = key_values
        if host_keys:
            vm["environment_variables"]["host_env_keys"] = host_keys
    config = {"name": plugin_name, "root_id": spec.get("pluginName", ""), "vm_config": vm}
    plugin = spec.get("pluginConfig")
    if plugin:
        config["configuration"] = {"@type": STRING_VALUE, "value": jsonpb(plugin)}
    policy = {"FAIL_OPEN": "FAIL_OPEN", "FAIL_RELOAD": "FAIL_RELOAD"}.get(fail, "FAIL_CLOSED")
    if policy == "FAIL_RELOAD" and version_tuple(istio) < (1, 27):
        policy = "FAIL_CLOSED"
    config["failure_policy"] = policy
    return {"@type": WASM_TYPE, "config": config}


def placeholder(resource_name, ecds_path):
    """The HTTP filter an Istio gateway's listener holds for the plugin:
    config discovery only, no default config."""
    return {
        "name": resource_name,
        "config_discovery": {
            "config_source": {"resource_api_version": "V3", "path_config_source": {"path": str(ecds_path)}},
            "type_urls": [WASM_TYPE, RBAC_TYPE],
        },
    }


def write_ecds(path, resource_name, config, version):
    """Moves a DiscoveryResponse holding `config` onto `path` (Envoy reloads
    on a move, not on a write)."""
    path = Path(path)
    tmp = path.with_suffix(f".{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps({
        "version_info": str(version),
        "resources": [{"@type": EXTENSION_CONFIG, "name": resource_name, "typed_config": config}],
    }))
    os.replace(tmp, path)


def route_on(config, header):
    """Makes the routes and sample backends of an envoy-test bootstrap match
    the route header `header` instead of x-sticky-split-pool."""
    for d in envoy.dicts(config):
        if d.get("name") == ROUTE_HEADER and "string_match" in d:
            d["name"] = header
        for key, value in list(d.items()):
            if isinstance(value, str) and value == f"%REQ({ROUTE_HEADER})%":
                d[key] = f"%REQ({header})%"


class IstioGateway:
    """An Envoy set up as an Istio gateway receives the plugin: the gateway
    listener of `base` (default envoy-test/envoy.yaml) with its Wasm filter
    replaced by the placeholder, fed from `<workdir>/ecds.json`; routes and
    backends as in `base` unless `edit` changes them; a default route to
    `default_pool` when given (an Istio VirtualService's last route)."""

    def __init__(self, workdir, doc, istio="1.30", base=None, agent=None, host_env=None, edit=None,
                 default_pool=None, concurrency=2):
        self.dir = Path(workdir) / f"istio-{time.monotonic_ns()}"
        self.dir.mkdir(parents=True)
        self.istio = istio
        self.doc = copy.deepcopy(doc)
        self.resource, self.plugin_name = names(doc, istio)
        if agent is None:
            layout, _ = build_layout(self.dir)
            agent = Agent(layout, self.dir / "agent-cache")
        self.agent = agent
        self.ecds = self.dir / "ecds.json"
        self.version = 1
        base = copy.deepcopy(base if base is not None else envoy.load())

        def setup(config):
            hcm = testbed.connection_manager(config)
            hcm["http_filters"] = [placeholder(self.resource, self.ecds) if f.get("name") == "sticky-split" else f
                                   for f in hcm["http_filters"]]
            if default_pool is not None:
                routes = testbed.routes(config)
                cluster = next(r["route"]["cluster"] for r in routes
                               if any(h.get("string_match", {}).get("exact") == default_pool
                                      for h in r.get("match", {}).get("headers", [])))
                routes[-1] = {"match": {"prefix": "/"}, "route": {"cluster": cluster}}
            header = (wasm_spec(doc).get("pluginConfig") or {}).get("routeHeader", ROUTE_HEADER).lower()
            if header != ROUTE_HEADER:
                route_on(config, header)
            config["node"] = {"id": "router~127.0.0.1~sticky-split-gateway.istio-ingress~istio-ingress.svc.cluster.local",
                              "cluster": "sticky-split-gateway.istio-ingress"}
            if edit:
                edit(config)

        self.push(self.doc)
        self.envoy = envoy.Envoy(base=base, workdir=self.dir, edit=setup, concurrency=concurrency,
                                 env=host_env)

    @property
    def gateway(self):
        return self.envoy.gateway

    def push(self, doc):
        """Writes what istiod and the agent would send for `doc`."""
        self.doc = copy.deepcopy(doc)
        write_ecds(self.ecds, self.resource, typed_config(doc, self.agent, self.istio), self.version)
        self.version += 1

    def counts(self):
        """{'config_reload': n, 'config_fail': n, ...} for the plugin's ECDS subscription."""
        stats = self.envoy.stats("extension_config_discovery")
        out = {}
        for name, value in stats.items():
            if self.resource in name or self.resource.replace("/", "_") in name:
                out[name.rsplit(".", 1)[1]] = value
        return out

    def apply(self, doc, timeout=20):
        """Pushes `doc` and waits until Envoy took it ('reloaded') or rejected
        it ('refused': the previous config keeps serving)."""
        before = self.counts()
        self.push(doc)

        def outcome(now):
            if now.get("update_rejected", 0) > before.get("update_rejected", 0):
                return "refused"
            if now.get("update_success", 0) > before.get("update_success", 0):
                return "reloaded"
            return None

        now = until(self.counts, lambda now: outcome(now) is not None, timeout, 0.05,
                    "the ECDS counters (Envoy did not take the update)")
        return outcome(now)

    def __enter__(self):
        self.envoy.start()
        try:
            until(self.counts, lambda now: now.get("update_success") or now.get("update_rejected"), 20, 0.05,
                  "the ECDS counters (no config taken)")
        except NeverHeld as e:
            self.envoy.stop()
            raise RuntimeError(f"{e}\n{self.envoy.log_tail()}") from None
        return self

    def __exit__(self, *exc):
        self.envoy.stop()


# Istio's bootstrap stats_config (tools/packaging/common/envoy_bootstrap.json
# and pkg/bootstrap/config.go, the same in 1.24 to 1.30), for a proxy whose
# extraStatTags are `extra_stat_tags` and that sets no proxyStatsMatcher. Each
# extra tag T becomes the rule (T=\.=(.*?);\.;), placed before Istio's own
# cache, component, tag, wasm_filter and rbac extractors, which see the
# whole name too; Envoy's default tags are off. Only stats the inclusion list
# names are kept at all (the prefix `wasm` keeps the filter's wasmcustom.*).
ISTIO_STATS_TAGS_BEFORE = [
    {"tag_name": "cluster_name", "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"},
    {"tag_name": "tcp_prefix", "regex": r"^tcp\.((.*?)\.)\w+?$"},
    {"tag_name": "response_code", "regex": r"_rq(_(\d{3}))$"},
    {"tag_name": "response_code_class", "regex": r"_rq(_(\dxx))$"},
    {"tag_name": "http_conn_manager_listener_prefix",
     "regex": r"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"},
    {"tag_name": "http_conn_manager_prefix",
     "regex": r"^http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"},
    {"tag_name": "listener_address",
     "regex": r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"},
    {"tag_name": "mongo_prefix", "regex": r"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$"},
]
ISTIO_STATS_TAGS_AFTER = [
    {"tag_name": "cache", "regex": r"(cache\.(.+?)\.)"},
    {"tag_name": "component", "regex": r"(component\.(.+?)\.)"},
    {"tag_name": "tag", "regex": r"(tag\.(.+?);\.)"},
    {"tag_name": "wasm_filter", "regex": r"(wasm_filter\.(.+?)\.)"},
    {"tag_name": "authz_enforce_result", "regex": r"rbac(\.(allowed|denied))"},
    {"tag_name": "authz_dry_run_action", "regex": r"(\.istio_dry_run_(allow|deny)_)"},
    {"tag_name": "authz_dry_run_result", "regex": r"(\.shadow_(allowed|denied))"},
]
ISTIO_INCLUSION_PREFIXES = ["reporter=", "cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm"]
ISTIO_INCLUSION_SUFFIXES = ["rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"]
ISTIO_INCLUSION_REGEXES = [r"vhost\..*\.route\..*"]


def stats_config(extra_stat_tags):
    """The stats_config Istio renders for a proxy with these extraStatTags
    (e.g. from the annotation sidecar.istio.io/extraStatTags: "reason,class,pool")."""
    extra = [{"tag_name": tag, "regex": f"({tag}=\\.=(.*?);\\.;)"} for tag in extra_stat_tags]
    patterns = ([{"prefix": p} for p in ISTIO_INCLUSION_PREFIXES]
                + [{"suffix": s} for s in ISTIO_INCLUSION_SUFFIXES]
                + [{"safe_regex": {"regex": r}} for r in ISTIO_INCLUSION_REGEXES]
                + [{"prefix": "component"}, {"prefix": "istio"}])
    return {
        "use_all_default_tags": False,
        "stats_tags": [*copy.deepcopy(ISTIO_STATS_TAGS_BEFORE), *extra, *copy.deepcopy(ISTIO_STATS_TAGS_AFTER)],
        "stats_matcher": {"inclusion_list": {"patterns": patterns}},
    }
