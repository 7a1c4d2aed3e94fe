"""Tries your sticky-split WasmPlugin (or TrafficExtension) and the
VirtualService or HTTPRoute that routes on its header, on this machine:
checks that they agree on the pool names, starts a local Envoy that gets the
filter the way an Istio gateway does (extension config discovery, the module
built here as istio-agent would hand it over, the pluginConfig printed as
istiod prints it), with one sample backend per route destination, and runs
the split and stickiness checks of validate-split against it.

Given an EnvoyExtensionPolicy (Envoy Gateway) and its HTTPRoute instead, it
also checks that the policy covers the HTTPRoute's default rule and pool
rules, and delivers the filter as Envoy Gateway does (in the listener,
enabled per route, the module from a stand-in of Envoy Gateway's server).

Exit status: 0 when every check passes, 1 when a check fails, 2 when the
manifests disagree or cannot be read."""

import argparse
import copy
import hashlib
import os
import secrets
import sys

import yaml

from .. import envoy, istio
from ..oci import build_layout
from .. import envoy_gateway as eg
from ..paths import RUN
from ..stats import ALPHA
from . import manifests, validate

DEFAULT_HEADER = "x-sticky-split-pool"


def load(paths):
    docs = []
    for path in paths:
        with open(path) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d)
    return docs


def plugin_of(docs):
    plugins = [d for d in docs if d.get("kind") in ("WasmPlugin", "TrafficExtension")]
    if len(plugins) != 1:
        raise ValueError(f"expected one WasmPlugin or TrafficExtension, found {len(plugins)}")
    return plugins[0]


def routes_of(docs, header):
    """({route header value: (destination, where)}, default destination or
    None) from the VirtualServices' http routes or the HTTPRoutes' rules."""
    by_value, default = {}, None
    for d in docs:
        where = f"{d.get('kind')} {d.get('metadata', {}).get('name')}"
        if d.get("kind") == "VirtualService":
            for i, route in enumerate(d["spec"].get("http", [])):
                dests = route.get("route", [])
                dest = dests[0]["destination"] if dests else {}
                name = dest.get("subset") or dest.get("host", "?")
                values = [v.get("exact") for m in route.get("match") or []
                          for k, v in (m.get("headers") or {}).items() if k.lower() == header]
                if not route.get("match"):
                    default = default or name
                for value in values:
                    by_value.setdefault(value, (name, f"{where} http[{i}]"))
        elif d.get("kind") == "HTTPRoute":
            for i, rule in enumerate(d["spec"].get("rules", [])):
                refs = rule.get("backendRefs", [])
                name = refs[0]["name"] if refs else "?"
                values = [h.get("value") for m in rule.get("matches") or [] for h in m.get("headers", [])
                          if h["name"].lower() == header and h.get("type", "Exact") == "Exact"]
                if not values:
                    default = default or name
                for value in values:
                    by_value.setdefault(value, (name, f"{where} rules[{i}]"))
    return by_value, default


def disagreements(pools, header, by_value, default, plugin_name):
    errors = []
    for pool in pools:
        if pool not in by_value:
            errors.append(f"pool {pool!r} of {plugin_name} has no route on {header}: its users would get the default route")
    for value, (_, where) in by_value.items():
        if value not in pools:
            errors.append(f"{where} routes {header}={value!r}, which is not a pool of {plugin_name} {pools}")
    if default is None:
        errors.append(f"no default route: requests without {header} (the filter not running) would get 404")
    return errors


def bootstrap(by_value, default, header):
    """A gateway routing on `header` to one cluster per destination, one
    sample backend per destination that serves every request, and a
    placeholder filter for the plugin."""
    dests = sorted({name for name, _ in by_value.values()} | {default})
    backends = {name: envoy.pipe(f"dest-{name}") for name in dests}
    routes = [{"match": {"prefix": "/", "headers": [{"name": header, "string_match": {"exact": value}}]},
               "route": {"cluster": f"dest-{name}"}} for value, (name, _) in by_value.items()]
    routes.append({"match": {"prefix": "/"}, "route": {"cluster": f"dest-{default}"}})
    return envoy.bootstrap(
        routes, [{"name": "sticky-split"}],
        [envoy.static_cluster(f"dest-{n}", at) for n, at in backends.items()],
        listeners=[envoy.sample_backend(n, at, route_header=header, any_route_header=True)
                   for n, at in backends.items()],
    )


def refused(errors):
    """Prints why the manifests disagree; the exit code."""
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 2


def module_layout():
    """The work folder and the built module's OCI layout and digest."""
    workdir = RUN / "try-wasmplugin"
    workdir.mkdir(parents=True, exist_ok=True)
    layout, digest = build_layout(workdir)
    return workdir, layout, digest


def describe(plugin_name, pools, cookie, header, by_value, default):
    """What the plugin and its routes say, as the run will test it."""
    print(f"{plugin_name}: pools {pools}, cookie {cookie!r}, routes on {header}")
    for value, (name, where) in by_value.items():
        print(f"  {header}={value} -> {name} ({where})")
    print(f"  default -> {default}")


def started(gw):
    """Starts the gateway; False (and why, on stderr) when it did not."""
    try:
        gw.__enter__()
    except (RuntimeError, OSError) as e:
        print(f"error: the gateway did not start: {e}", file=sys.stderr)
        return False
    return True


def verdict(gw, weights, cookie, plugin_name, a):
    """The split and stickiness checks through the running gateway, then
    (with --serve) keeps it up; the exit code."""
    url = f"http://127.0.0.1:{gw.gateway}/"
    print(f"Gateway {url}\n")
    ok = validate.run(url, weights, a.n, cookie, ALPHA, min(100, a.n), 10, "x-served-by", out=sys.stdout)
    print(f"\n{'PASS' if ok else 'FAIL'}: {plugin_name} with its routes")
    if a.serve:
        print(f"\nServing (Ctrl-C to stop): curl -si {url}   admin http://127.0.0.1:{gw.envoy.ports['admin']}/")
        gw.envoy.serve_until_interrupted()
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="try-wasmplugin", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="YAML files with the WasmPlugin or TrafficExtension and its routes")
    ap.add_argument("-n", type=int, default=2000, help="new users to send (default 2000)")
    ap.add_argument("--serve", action="store_true", help="keep the gateway serving after the checks (Ctrl-C stops)")
    ap.add_argument("--istio", default="1.30", help="the Istio version whose delivery to imitate (default 1.30)")
    ap.add_argument("--eg", default=None,
                    help="for an EnvoyExtensionPolicy: the Envoy Gateway release whose delivery to imitate "
                         "(default: the one that ships the Envoy run here)")
    ap.add_argument("--keep-sha256", action="store_true",
                    help="keep spec.sha256 (or the policy's image.sha256; by default it is set to the digest "
                         "of the image built here)")
    a = ap.parse_args(argv)
    try:
        docs = load(a.files)
        if any(d.get("kind") == "EnvoyExtensionPolicy" for d in docs):
            return try_envoy_extension_policy(docs, a)
        plugin = plugin_of(docs)
    except (OSError, yaml.YAMLError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    spec = istio.wasm_spec(plugin)
    config = spec.get("pluginConfig") or {}
    pools = {p["name"]: p.get("weight", 0) for p in config.get("pools", [])}
    header = config.get("routeHeader", DEFAULT_HEADER).lower()
    cookie = (config.get("cookie") or {}).get("name", "sticky-split")
    plugin_name = f"{plugin['kind']} {plugin['metadata']['name']}"
    by_value, default = routes_of(docs, header)
    errors = disagreements(list(pools), header, by_value, default, plugin_name)
    if errors:
        return refused(errors)
    workdir, layout, digest = module_layout()
    plugin = copy.deepcopy(plugin)
    if not a.keep_sha256:
        istio.wasm_spec(plugin)["sha256"] = digest
    agent = istio.Agent(layout, workdir / "agent-cache")
    gw = istio.IstioGateway(workdir, plugin, istio=a.istio, agent=agent, base=bootstrap(by_value, default, header))
    describe(plugin_name, pools, cookie, header, by_value, default)
    print(f"Delivered as Istio {a.istio} would: ECDS resource {gw.resource!r} (log: {gw.envoy.log_path})")
    if not started(gw):
        return 1
    try:
        if not gw.counts().get("update_success"):
            print(f"FAIL: Envoy refused the plugin:\n{gw.envoy.log_tail(10)}")
            return 1
        return verdict(gw, {by_value[p][0]: w for p, w in pools.items()}, cookie, plugin_name, a)
    finally:
        gw.__exit__(None, None, None)


def gateway_for(routes):
    """The Gateway the HTTPRoutes attach to, when none is given: one HTTP
    listener on port 80, named as the first parentRef's sectionName says."""
    ref = routes[0]["spec"]["parentRefs"][0]
    ns = ref.get("namespace", routes[0]["metadata"].get("namespace", "default"))
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": ref["name"], "namespace": ns},
            "spec": {"gatewayClassName": manifests.EG_GATEWAY_CLASS,
                     "listeners": [{"name": ref.get("sectionName", "http"), "protocol": "HTTP", "port": 80}]}}


def try_envoy_extension_policy(docs, a):
    """try-wasmplugin for an EnvoyExtensionPolicy and its HTTPRoute(s)."""
    policies = [d for d in docs if d.get("kind") == "EnvoyExtensionPolicy"]
    routes = [d for d in docs if d.get("kind") == "HTTPRoute"]
    if len(policies) != 1 or len(policies[0]["spec"].get("wasm", [])) != 1 or not routes:
        print("error: expected one EnvoyExtensionPolicy with one spec.wasm entry, and its HTTPRoute", file=sys.stderr)
        return 2
    policy = copy.deepcopy(policies[0])
    entry = policy["spec"]["wasm"][0]
    config = entry.get("config") or {}
    pools = {p["name"]: p.get("weight", 0) for p in config.get("pools", [])}
    header = config.get("routeHeader", DEFAULT_HEADER).lower()
    cookie = (config.get("cookie") or {}).get("name", "sticky-split")
    plugin_name = f"EnvoyExtensionPolicy {policy['metadata']['name']}"
    gateways = [d for d in docs if d.get("kind") == "Gateway"] or [gateway_for(routes)]
    by_value, default = routes_of(docs, header)
    errors = disagreements(list(pools), header, by_value, default, plugin_name)
    errors += manifests.policy_scope_errors(plugin_name, policy, header, list(pools),
                                            {(g["metadata"].get("namespace", "default"), g["metadata"]["name"]): g
                                             for g in gateways}, routes)
    if errors:
        return refused(errors)
    workdir, layout, digest = module_layout()
    code = entry["code"]
    if code["type"] == "Image":
        registry = eg.Registry(images={code["image"]["url"]: layout})
        if not a.keep_sha256:
            code["image"]["sha256"] = digest
    else:
        module = envoy.WASM.read_bytes()
        registry = eg.Registry(http={code["http"]["url"]: module})
        if not a.keep_sha256:
            code["http"]["sha256"] = hashlib.sha256(module).hexdigest()
    host_env = {}
    for key in (entry.get("env") or {}).get("hostKeys") or []:
        if os.environ.get(key):
            host_env[key] = os.environ[key]
        else:
            host_env[key] = secrets.token_urlsafe(32)
            print(f"env.hostKeys {key}: not set here, a random key for this run")
    others = [d for d in docs if d.get("kind") not in ("EnvoyExtensionPolicy", "Gateway")]
    try:
        gw = eg.EnvoyGatewayProxy(workdir, [*gateways, *others, policy], registry=registry, host_env=host_env,
                                  eg=a.eg, strict_backends=False, route_header=header)
    except (eg.FetchFailed, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = sorted({e["error"] for e in gw.entries if e.get("error")})
    if failed:
        fail_open = entry.get("failOpen", False)
        print(f"FAIL: Envoy Gateway could not fetch or verify the module ({'; '.join(failed)}): the routes "
              f"{'would go on without the filter' if fail_open else 'would answer 500'}", file=sys.stderr)
        return 1
    describe(plugin_name, pools, cookie, header, by_value, default)
    print(f"Delivered as Envoy Gateway {gw.eg} would: listener {gw.listener!r}, filter "
          f"{eg.filter_name(policy, 0)!r} (disabled, enabled on {sum(1 for e in gw.entries if e.get('policy'))} "
          f"routes), module from a stand-in of its Wasm server (log: {gw.envoy.log_path})")
    if not started(gw):
        return 1
    try:
        log = gw.envoy.log_text()
        if "configured " not in log or "failed to load" in log:
            print(f"FAIL: the filter did not load:\n{gw.envoy.log_tail(10)}")
            return 1
        served = {svc: name for (_, svc), (name, _) in gw.backends.items()}
        weights = {served.get(by_value[p][0], by_value[p][0]): w for p, w in pools.items()}
        return verdict(gw, weights, cookie, plugin_name, a)
    finally:
        gw.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
