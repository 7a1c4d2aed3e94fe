"""Tries your sticky-split WasmPlugin (or TrafficExtension) and the
VirtualService or HTTPRoute that routes on its header, on this machine:
checks that they agree on the pool names, starts a local Envoy that gets the
filter the way an Istio gateway does (extension config discovery, the module
built here as istio-agent would hand it over, the pluginConfig printed as
istiod prints it), with one sample backend per route destination, and runs
the split and stickiness checks of validate-split against it.

Exit status: 0 when every check passes, 1 when a check fails, 2 when the
manifests disagree or cannot be read."""

import argparse
import copy
import sys

import yaml

from .. import envoy, istio
from ..paths import RUN
from ..stats import ALPHA
from . import validate

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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="try-wasmplugin", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="YAML files with the WasmPlugin or TrafficExtension and its routes")
    ap.add_argument("-n", type=int, default=2000, help="new users to send (default 2000)")
    ap.add_argument("--serve", action="store_true", help="keep the gateway serving after the checks (Ctrl-C stops)")
    ap.add_argument("--istio", default="1.30", help="the Istio version whose delivery to imitate (default 1.30)")
    ap.add_argument("--keep-sha256", action="store_true",
                    help="keep spec.sha256 (by default it is set to the digest of the image built here)")
    a = ap.parse_args(argv)
    try:
        docs = load(a.files)
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
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        return 2

    workdir = RUN / "try-wasmplugin"
    workdir.mkdir(parents=True, exist_ok=True)
    layout, digest = istio.build_layout(workdir)
    plugin = copy.deepcopy(plugin)
    if not a.keep_sha256:
        istio.wasm_spec(plugin)["sha256"] = digest
    agent = istio.Agent(layout, workdir / "agent-cache")
    gw = istio.IstioGateway(workdir, plugin, istio=a.istio, agent=agent, base=bootstrap(by_value, default, header))
    print(f"{plugin_name}: pools {pools}, cookie {cookie!r}, routes on {header}")
    for value, (name, where) in by_value.items():
        print(f"  {header}={value} -> {name} ({where})")
    print(f"  default -> {default}")
    print(f"Delivered as Istio {a.istio} would: ECDS resource {gw.resource!r} (log: {gw.envoy.log_path})")
    try:
        gw.__enter__()
    except (RuntimeError, OSError) as e:
        print(f"error: the gateway did not start: {e}", file=sys.stderr)
        return 1
    try:
        if not gw.counts().get("update_success"):
            print(f"FAIL: Envoy refused the plugin:\n{gw.envoy.log_tail(10)}")
            return 1
        url = f"http://127.0.0.1:{gw.gateway}/"
        weights = {by_value[p][0]: w for p, w in pools.items()}
        print(f"Gateway {url}\n")
        ok = validate.run(url, weights, a.n, cookie, ALPHA, min(100, a.n), 10, "x-served-by", out=sys.stdout)
        print(f"\n{'PASS' if ok else 'FAIL'}: {plugin_name} with its routes")
        if a.serve:
            print(f"\nServing (Ctrl-C to stop): curl -si {url}   admin http://127.0.0.1:{gw.envoy.ports['admin']}/")
            gw.envoy.serve_until_interrupted()
        return 0 if ok else 1
    finally:
        gw.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
