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
    k8s = sorted((ROOT / "kubernetes").glob("*.yaml"))
    no_sidecar = sorted((ROOT / "kubernetes/no-sidecar").glob("*.yaml"))
    replaced = {p.name for p in no_sidecar}
    # the Gateway API set deploys the same namespace, workloads and HPAs
    workloads = [p for p in k8s if p.name.startswith(("00-", "10-", "20-"))]
    gateway_api = workloads + sorted((ROOT / "gateway-api").glob("*.yaml"))
    traffic_extension = sorted((ROOT / "gateway-api/trafficextension").glob("*.yaml"))
    replaced_te = {p.name for p in traffic_extension}
    return {
        "kubernetes": k8s,
        "kubernetes/no-sidecar": [p for p in k8s if p.name not in replaced] + no_sidecar,
        "vm": sorted((ROOT / "vm").glob("*.yaml")),
        "gateway-api": gateway_api,
        "gateway-api/trafficextension": [p for p in gateway_api if p.name not in replaced_te] + traffic_extension,
    }


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
            schema["properties"].update(
                {
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
                }
            )
            schema.setdefault("required", [])
            schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata"})
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
