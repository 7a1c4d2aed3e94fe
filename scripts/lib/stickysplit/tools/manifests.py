"""Offline checks of the Istio manifests in wasmplugin/:

- every Istio resource validates against the vendored CRD schema of its
  apiVersion, strictly (unknown fields rejected);
- every built-in resource validates against the Kubernetes schemas of
  kubernetes-validate, strictly;
- the pool names agree between the plugin's pluginConfig (WasmPlugin or
  TrafficExtension) and the routes on its header (VirtualService routes to
  DestinationRule subsets, or HTTPRoute rules to per-pool Services), so a
  typo cannot silently send a pool's users to the default route.
"""

import copy
import functools
import sys
from pathlib import Path

import yaml

from .. import envoy

ROOT = envoy.REPO / "wasmplugin"
SCHEMAS = [ROOT / "schemas/istio", ROOT / "schemas/gateway-api"]
DEFAULT_ROUTE_HEADER = "x-sticky-split-pool"


def load_docs(paths):
    docs = []
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append((Path(path), doc))
    return docs


def manifest_sets():
    """{name: [paths]}: each deployable set (a use case, or a variant
    applied over one)."""
    k8s = _yaml_in("kubernetes")
    # the Gateway API set deploys the same namespace, workloads and HPAs
    gateway_api = _workloads() + _yaml_in("gateway-api")
    return {
        "kubernetes": k8s,
        "kubernetes/no-sidecar": _replaced(k8s, _yaml_in("kubernetes/no-sidecar")),
        "vm": _yaml_in("vm"),
        "gateway-api": gateway_api,
        "gateway-api/trafficextension": _replaced(gateway_api, _yaml_in("gateway-api/trafficextension")),
    }


def _yaml_in(folder):
    """The manifests of a folder of wasmplugin/, in apply order."""
    return sorted((ROOT / folder).glob("*.yaml"))


def _workloads():
    """The namespace, workloads and HPAs of kubernetes/ that other sets deploy too."""
    return [p for p in _yaml_in("kubernetes") if p.name.startswith(("00-", "10-", "20-"))]


def _replaced(base, variant):
    """`base` with the files of `variant` in place of those of the same name."""
    names = {p.name for p in variant}
    return [p for p in base if p.name not in names] + variant


def _strict(node):
    """Adds additionalProperties: false to every object schema that lists
    its properties, unless it keeps unknown fields on purpose."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for v in node.values():
            _strict(v)
    elif isinstance(node, list):
        for v in node:
            _strict(v)


def istio_schemas():
    """{(apiVersion, kind): strict schema} from the vendored CRDs."""
    out = {}
    for path in sorted(p for d in SCHEMAS for p in d.glob("*.crd.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            _strict(schema)
            _object_meta_schema(schema)
            out[(f"{group}/{version['name']}", kind)] = schema
    return out


def validate_schema(docs, k8s_version=None):
    """Errors (strings) from schema validation of (path, doc) pairs."""
    import kubernetes_validate
    from openapi_schema_validator import OAS30Validator

    schemas = istio_schemas()
    version = k8s_version or kubernetes_validate.latest_version()
    errors = []
    for path, doc in docs:
        where = f"{path.relative_to(envoy.REPO) if path.is_absolute() else path}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in schemas:
            for e in OAS30Validator(schemas[key]).iter_errors(doc):
                loc = ".".join(str(p) for p in e.absolute_path) or "(root)"
                errors.append(f"{where}: {loc}: {e.message}")
        elif key[0] and ("istio.io" in key[0] or "gateway.networking.k8s.io" in key[0]):
            errors.append(f"{where}: no vendored schema for {key}")
        else:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                loc = ".".join(str(p) for p in e.path) or "(root)"
                errors.append(f"{where}: {loc}: {e.message}")
    return errors


def plugin_config(doc):
    """The pluginConfig of a WasmPlugin or a TrafficExtension."""
    spec = doc.get("spec", {})
    return (spec.get("wasm", {}) if doc["kind"] == "TrafficExtension" else spec).get("pluginConfig") or {}


def check_agreement(docs):
    """Errors (strings) where pool names disagree between the plugin
    (WasmPlugin or TrafficExtension) and the routes on its header:
    VirtualService routes to DestinationRule subsets, or HTTPRoute rules to
    Services that select the pool's pods."""
    by_kind = {}
    for _, d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    errors = []
    plugins = by_kind.get("WasmPlugin", []) + by_kind.get("TrafficExtension", [])
    if not plugins:
        errors.append("no WasmPlugin or TrafficExtension")
    gateways = {(g["metadata"].get("namespace"), g["metadata"]["name"]): g
                for g in by_kind.get("Gateway", []) if g["apiVersion"].startswith("gateway.networking.k8s.io/")}
    for plugin in plugins:
        name = f"{plugin['kind']} {plugin['metadata']['name']}"
        cfg = plugin_config(plugin)
        pools = [p["name"] for p in cfg.get("pools", [])]
        header = cfg.get("routeHeader", DEFAULT_ROUTE_HEADER).lower()
        for ref in plugin["spec"].get("targetRefs", []):
            key = (ref.get("namespace", plugin["metadata"].get("namespace")), ref["name"])
            if ref.get("kind") == "Gateway" and key not in gateways:
                errors.append(f"{name}: targetRefs Gateway {ref['name']!r}, which is not in the set")
            elif ref.get("kind") == "Gateway" and gateways[key]["spec"].get("gatewayClassName") != "istio":
                errors.append(f"{name}: targets Gateway {ref['name']!r}, whose gatewayClassName is not istio")
        if by_kind.get("HTTPRoute"):
            errors += _httproute_agreement(name, pools, header, by_kind)
        else:
            errors += _virtualservice_agreement(name, pools, header, by_kind)
    return errors


def _virtualservice_agreement(name, pools, header, by_kind):
    subsets = {}  # host -> set of subset names
    for dr in by_kind.get("DestinationRule", []):
        subsets.setdefault(dr["spec"]["host"], set()).update(s["name"] for s in dr["spec"].get("subsets", []))
    errors = []
    routed = {}  # pool -> destinations
    has_default = False
    for vs in by_kind.get("VirtualService", []):
        for i, route in enumerate(vs["spec"].get("http", [])):
            dests = [r["destination"] for r in route.get("route", [])]
            matches = route.get("match")
            if not matches:
                has_default = True
                for dst in dests:
                    if dst.get("subset") and dst["subset"] not in subsets.get(dst["host"], set()):
                        errors.append(f"{vs['metadata']['name']}: default route: no subset {dst['subset']!r} for {dst['host']}")
                continue
            for m in matches:
                h = {k.lower(): v for k, v in (m.get("headers") or {}).items()}.get(header)
                if h is None:
                    continue
                value = h.get("exact")
                if value is None:
                    errors.append(f"{vs['metadata']['name']}: http[{i}] matches {header} without exact")
                    continue
                if value not in pools:
                    errors.append(
                        f"{vs['metadata']['name']}: http[{i}] routes {header}={value!r}, which is not a pool of {name} ({pools})"
                    )
                routed.setdefault(value, []).extend(dests)
    for pool in pools:
        if pool not in routed:
            errors.append(f"{name}: pool {pool!r} has no VirtualService route on {header}")
            continue
        for dst in routed[pool]:
            if dst.get("subset") != pool:
                errors.append(f"pool {pool!r} is routed to subset {dst.get('subset')!r}, not {pool!r}")
            elif pool not in subsets.get(dst["host"], set()):
                errors.append(f"pool {pool!r}: no DestinationRule subset {pool!r} for host {dst['host']}")
    if not has_default:
        errors.append(f"{name}: the VirtualService has no default route (requests without {header} would get 404)")
    return errors


def _httproute_agreement(name, pools, header, by_kind):
    services = {(s["metadata"].get("namespace"), s["metadata"]["name"]): s for s in by_kind.get("Service", [])}
    gateways = {(g["metadata"].get("namespace"), g["metadata"]["name"])
                for g in by_kind.get("Gateway", []) if g["apiVersion"].startswith("gateway.networking.k8s.io/")}
    errors = []
    routed = {}  # pool -> [(route name, Service or None, ref)]
    has_default = False
    for hr in by_kind["HTTPRoute"]:
        ns, route = hr["metadata"].get("namespace"), hr["metadata"]["name"]
        for ref in hr["spec"].get("parentRefs", []):
            if (ref.get("namespace", ns), ref["name"]) not in gateways:
                errors.append(f"HTTPRoute {route}: parentRefs Gateway {ref['name']!r}, which is not in the set")
        for i, rule in enumerate(hr["spec"].get("rules", [])):
            backends = [(ref, services.get((ref.get("namespace", ns), ref["name"]))) for ref in rule.get("backendRefs", [])]
            for ref, svc in backends:
                if svc is None:
                    errors.append(f"HTTPRoute {route}: rules[{i}] sends to Service {ref['name']!r}, which is not in the set")
            values = []
            for m in rule.get("matches") or [{}]:
                for h in m.get("headers", []):
                    if h["name"].lower() != header:
                        continue
                    if h.get("type", "Exact") != "Exact":
                        errors.append(f"HTTPRoute {route}: rules[{i}] matches {header} with type {h['type']}, not Exact")
                        continue
                    values.append(h["value"])
            if not values:
                has_default = True
                continue
            for value in values:
                if value not in pools:
                    errors.append(f"HTTPRoute {route}: rules[{i}] routes {header}={value!r}, which is not a pool of {name} ({pools})")
                routed.setdefault(value, []).extend(backends)
    for pool in pools:
        if pool not in routed:
            errors.append(f"{name}: pool {pool!r} has no HTTPRoute rule on {header}")
            continue
        for ref, svc in routed[pool]:
            selected = (svc or {}).get("spec", {}).get("selector", {}).get("pool")
            if svc is not None and selected != pool:
                errors.append(f"pool {pool!r} is routed to Service {ref['name']!r}, which selects pool {selected!r}")
    if not has_default:
        errors.append(f"{name}: the HTTPRoute has no default rule (requests without {header} would get 404)")
    return errors


# ---- Envoy Gateway: wasmplugin/envoy-gateway/ ----
# The EnvoyExtensionPolicy is validated against each vendored generation of
# its CRD (OpenAPI, strict, and the CEL rules the API server evaluates); the
# pools agree with the HTTPRoute as for Istio's Gateway API set; and the
# policy must cover every rule on the route header and the default rule.

EG_SCHEMAS = ROOT / "schemas/envoy-gateway"
EG_GATEWAY_CLASS = "eg"  # the GatewayClass of Envoy Gateway's quickstart
EG_POLICY = ("gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy")
EG_PROXY = ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy")


def envoy_gateway_sets():
    """{name: [paths]}: the Envoy Gateway sets, with the namespace,
    workloads and HPAs of kubernetes/; gateway-target/ replaces the policy."""
    base = _workloads() + _yaml_in("envoy-gateway")
    return {
        "envoy-gateway": base,
        "envoy-gateway/gateway-target": _replaced(base, _yaml_in("envoy-gateway/gateway-target")),
    }


def _object_meta_schema(schema):
    schema["properties"].update({
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    })
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return schema


@functools.lru_cache(maxsize=None)
def envoy_extension_policy_schemas():
    """{generation ('v1.5.9', ...): strict schema} of the vendored CRDs,
    read once (about 0.3 s): callers must not change them."""
    out = {}
    for path in sorted(EG_SCHEMAS.glob("envoyextensionpolicies-*.crd.yaml")):
        crd = yaml.safe_load(path.read_text())
        [version] = [v for v in crd["spec"]["versions"] if v.get("served")]
        schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
        _strict(schema)
        out[path.name.split("-", 1)[1].removesuffix(".crd.yaml")] = _object_meta_schema(schema)
    return out


def _defaulted(value, schema):
    """`value` with the schema's defaults filled in, as the API server
    defaults an object before it validates it."""
    if isinstance(value, dict) and isinstance(schema, dict):
        out = dict(value)
        for name, sub in (schema.get("properties") or {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = _defaulted(out[name], sub)
        return out
    if isinstance(value, list) and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        return [_defaulted(v, schema["items"]) for v in value]
    return value


def _cel_rules(value, schema, path=""):
    """(path, value, rule) for every x-kubernetes-validations rule on a
    node present in `value`."""
    if not isinstance(schema, dict):
        return
    for rule in schema.get("x-kubernetes-validations", []):
        yield path or "(root)", value, rule
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                yield from _cel_rules(value[name], sub, f"{path}.{name}" if path else name)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            yield from _cel_rules(v, schema["items"], f"{path}[{i}]")


@functools.lru_cache(maxsize=None)
def _cel_program(rule):
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(rule))


def _cel_errors(doc, schema):
    """Messages of the CEL rules `doc` breaks (transition rules, which need
    the old object, are skipped: a manifest is a create)."""
    import celpy

    errors = []
    for path, value, rule in _cel_rules(doc, schema):
        if "oldSelf" in rule["rule"]:
            continue
        try:
            result = _cel_program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as e:  # noqa: BLE001 - an evaluation error fails the rule, as in the API server
            result = e
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            detail = "" if isinstance(result, celpy.celtypes.BoolType) else f" (evaluation error: {result})"
            errors.append(f"{path}: {rule.get('message') or rule['rule']}{detail}")
    return errors


def validate_envoy_extension_policy(doc, generation, schemas=None):
    """Errors (strings) of an EnvoyExtensionPolicy against the vendored CRD
    of `generation` ('v1.5.9', 'v1.8.3' or 'v1.9.0'): strict OpenAPI after
    defaulting, then the CEL rules."""
    from openapi_schema_validator import OAS30Validator

    schema = (schemas or envoy_extension_policy_schemas())[generation]
    doc = _defaulted(doc, schema)
    errors = [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
              for e in OAS30Validator(schema).iter_errors(doc)]
    return errors + _cel_errors(doc, schema)


def _envoy_proxy_errors(doc):
    """An EnvoyProxy, as far as it can be checked here: its CRD is not
    vendored, so only the envoy container's env, a Kubernetes EnvVar list,
    is validated strictly (inside a Pod)."""
    import kubernetes_validate

    spec = doc.get("spec", {})
    provider = spec.get("provider", {})
    if provider.get("type") != "Kubernetes":
        return ["spec.provider.type: must be Kubernetes for the container env to apply"]
    env = provider.get("kubernetes", {}).get("envoyDeployment", {}).get("container", {}).get("env", [])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "envoy"},
           "spec": {"containers": [{"name": "envoy", "image": "envoy", "env": env}]}}
    try:
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as e:
        loc = ".".join(str(p) for p in list(e.path)[3:])
        return [f"spec.provider.kubernetes.envoyDeployment.container.{loc}: {e.message}"]
    return []


def validate_envoy_gateway(docs, k8s_version=None):
    """Errors (strings) from schema validation of an Envoy Gateway set: each
    EnvoyExtensionPolicy against every vendored generation, an EnvoyProxy's
    container env, everything else as validate_schema does."""
    schemas = envoy_extension_policy_schemas()
    errors, rest = [], []
    for path, doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        where = f"{path.relative_to(envoy.REPO) if path.is_absolute() else path}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        if key == EG_POLICY:
            for generation in schemas:
                errors += [f"{where}: CRD {generation}: {e}" for e in validate_envoy_extension_policy(doc, generation, schemas)]
        elif key == EG_PROXY:
            errors += [f"{where}: {e}" for e in _envoy_proxy_errors(doc)]
        else:
            rest.append((path, doc))
    return errors + validate_schema(rest, k8s_version)


def policy_scope_errors(name, policy, header, pools, gateways, routes):
    """A policy must cover every rule on the route header and the default
    rule of the HTTPRoutes it is meant for: Envoy picks the route before any
    filter runs and runs the filter only where the policy enabled it."""
    from .. import envoy_gateway as eg

    errors = []
    for hr in routes:
        for gw in gateways.values():
            for gl in gw["spec"].get("listeners", []):
                if not eg.attached(hr, gw, gl):
                    continue
                key = (hr["metadata"].get("namespace", "default"), hr["metadata"]["name"])
                for i, rule in enumerate(hr["spec"].get("rules", [])):
                    values = [h["value"] for m in rule.get("matches") or [] for h in m.get("headers", [])
                              if h["name"].lower() == header]
                    if eg.scope_level(policy, gw, gl, key, rule.get("name")) is not None:
                        continue
                    what = f"HTTPRoute {key[1]} rules[{i}]" + (f" ({rule['name']})" if rule.get("name") else "")
                    if not values:
                        errors.append(
                            f"{name}: its targetRefs leave out {what}, the default rule: Envoy picks the route "
                            f"before the filter runs and runs it only on covered routes, so requests without "
                            f"{header} (every new user) would never reach the filter: no cookie, no split. "
                            f"Target the whole HTTPRoute (no sectionName) or the Gateway")
                    elif any(v in pools for v in values):
                        errors.append(
                            f"{name}: its targetRefs leave out {what}, which routes {header}={values[0]!r}: "
                            f"a request carrying that header itself would reach the pool without the filter "
                            f"(a forged header picks the pool). Target the whole HTTPRoute or the Gateway")
    return errors


def check_envoy_gateway_agreement(docs):
    """Errors (strings) where an Envoy Gateway set disagrees with itself:
    the pools of each EnvoyExtensionPolicy's config and the HTTPRoute rules
    on its header (as for Istio's Gateway API set), the policy's targets and
    scope, the Gateway's class and EnvoyProxy, and the signing key's way
    from a Secret through the EnvoyProxy and env.hostKeys into the VM."""
    by_kind = {}
    for _, d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    ns_name = lambda d: (d["metadata"].get("namespace", "default"), d["metadata"]["name"])  # noqa: E731
    gateways = {ns_name(g): g for g in by_kind.get("Gateway", []) if g["apiVersion"].startswith("gateway.networking.k8s.io/")}
    routes = {ns_name(r): r for r in by_kind.get("HTTPRoute", [])}
    proxies = {ns_name(p): p for p in by_kind.get("EnvoyProxy", [])}
    errors = []
    policies = by_kind.get("EnvoyExtensionPolicy", [])
    if not policies:
        errors.append("no EnvoyExtensionPolicy")
    for g in gateways.values():
        gname = f"Gateway {g['metadata']['name']}"
        if g["spec"].get("gatewayClassName") != EG_GATEWAY_CLASS:
            errors.append(f"{gname}: gatewayClassName {g['spec'].get('gatewayClassName')!r} is not {EG_GATEWAY_CLASS!r}, "
                          "the Envoy Gateway class of this set")
        ref = (g["spec"].get("infrastructure") or {}).get("parametersRef")
        if ref and (ref.get("kind") != "EnvoyProxy" or (ns_name(g)[0], ref["name"]) not in proxies):
            errors.append(f"{gname}: infrastructure.parametersRef {ref.get('kind')} {ref.get('name')!r} is not an EnvoyProxy in the set")
    for policy in policies:
        name = f"EnvoyExtensionPolicy {policy['metadata']['name']}"
        ns = policy["metadata"].get("namespace", "default")
        wasms = policy["spec"].get("wasm", [])
        if len(wasms) != 1:
            errors.append(f"{name}: expected one spec.wasm entry (sticky-split), found {len(wasms)}")
            continue
        entry = wasms[0]
        cfg = entry.get("config") or {}
        pools = [p["name"] for p in cfg.get("pools", [])]
        header = cfg.get("routeHeader", DEFAULT_ROUTE_HEADER).lower()
        for ref in policy["spec"].get("targetRefs", []):
            known = routes if ref.get("kind") == "HTTPRoute" else gateways if ref.get("kind") == "Gateway" else {}
            if (ns, ref["name"]) not in known:
                errors.append(f"{name}: targetRefs {ref.get('kind')} {ref['name']!r}, which is not in the set "
                              f"(targetRefs are local: namespace {ns})")
        # every HTTPRoute that routes on the header is one the policy is meant for
        on_header = [r for r in routes.values()
                     if any(h["name"].lower() == header for rule in r["spec"].get("rules", [])
                            for m in rule.get("matches") or [] for h in m.get("headers", []))]
        errors += policy_scope_errors(name, policy, header, pools, gateways, on_header)
        errors += _httproute_agreement(name, pools, header, by_kind)
        # the signing key: a Secret -> the EnvoyProxy's container env -> env.hostKeys -> the VM
        host_keys = (entry.get("env") or {}).get("hostKeys") or []
        cookie = cfg.get("cookie") or {}
        for key in [cookie.get("signingKeyEnv"), *cookie.get("previousSigningKeyEnvs", [])]:
            if key and key not in host_keys:
                errors.append(f"{name}: cookie names {key} but env.hostKeys does not pass it to the VM "
                              f"(the filter would refuse its config: not set in the VM)")
        set_vars = {e["name"] for p in proxies.values()
                    for e in p["spec"].get("provider", {}).get("kubernetes", {}).get("envoyDeployment", {})
                    .get("container", {}).get("env", [])}
        for key in host_keys:
            if key not in set_vars:
                errors.append(f"{name}: env.hostKeys {key} is set by no EnvoyProxy in the set (the Envoy process must have it)")
    return errors


def main(argv=None):
    failed = False
    for name, paths in manifest_sets().items():
        docs = load_docs(paths)
        errors = validate_schema(docs) + check_agreement(docs)
        kinds = ", ".join(sorted({d["kind"] for _, d in docs}))
        print(f"{name}: {len(docs)} resources ({kinds}): {'OK' if not errors else 'FAILED'}")
        for e in errors:
            print(f"  {e}")
        failed |= bool(errors)
    for name, paths in envoy_gateway_sets().items():
        docs = load_docs(paths)
        errors = validate_envoy_gateway(docs) + check_envoy_gateway_agreement(docs)
        kinds = ", ".join(sorted({d["kind"] for _, d in docs}))
        generations = ", ".join(envoy_extension_policy_schemas())
        print(f"{name}: {len(docs)} resources ({kinds}; EnvoyExtensionPolicy against CRDs {generations}; "
              f"EnvoyProxy: container env only): {'OK' if not errors else 'FAILED'}")
        for e in errors:
            print(f"  {e}")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
