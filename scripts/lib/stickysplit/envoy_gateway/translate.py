"""The listeners and route tables Envoy Gateway's translator builds for a
Gateway, its HTTPRoutes and EnvoyExtensionPolicies with Wasm entries. The
facts come from Envoy Gateway's source, v1.5 to v1.9 (docs/envoy-gateway.md,
"Delivered as Envoy Gateway delivers it"):

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
  failing entry has `failOpen: true` (then the entry is left out).
"""

from .. import envoy
from ..istio import go_json, go_number
from ..oci import FetchFailed
from .module_server import WASM_CLUSTER
from .registry import image_ref
from .routes import key_of, listener_name, translate_routes
from .scope import policy_for

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
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
    built = {key_of(p): build_wasms(p, registry, server, eg) for p in policies}
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
            wasms, error, fail_open = built[key_of(policy)]
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
