"""Offline checks of the Istio manifests in wasmplugin/:

- every Istio resource validates against the vendored CRD schema of its
  apiVersion, strictly (unknown fields rejected);
- every built-in resource validates against the Kubernetes schemas of
  kubernetes-validate, strictly;
- the pool names agree between the WasmPlugin's pluginConfig, the
  VirtualService's header routes and the DestinationRule's subsets, so a
  typo cannot silently send a pool's users to the default route.
"""

import copy
import sys
from pathlib import Path

import yaml

from .. import envoy

ROOT = envoy.REPO / "wasmplugin"
SCHEMAS = ROOT / "schemas/istio"
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
    return {
        "kubernetes": k8s,
        "kubernetes/no-sidecar": [p for p in k8s if p.name not in replaced] + no_sidecar,
        "vm": sorted((ROOT / "vm").glob("*.yaml")),
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
    for path in sorted(SCHEMAS.glob("*.crd.yaml")):
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
        elif key[0] and "istio.io" in key[0]:
            errors.append(f"{where}: no vendored schema for {key}")
        else:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                loc = ".".join(str(p) for p in e.path) or "(root)"
                errors.append(f"{where}: {loc}: {e.message}")
    return errors


def check_agreement(docs):
    """Errors (strings) where pool names disagree between the WasmPlugin,
    the VirtualService routes on its header, and the DestinationRule subsets."""
    by_kind = {}
    for _, d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    subsets = {}  # host -> set of subset names
    for dr in by_kind.get("DestinationRule", []):
        subsets.setdefault(dr["spec"]["host"], set()).update(s["name"] for s in dr["spec"].get("subsets", []))
    errors = []
    plugins = by_kind.get("WasmPlugin", [])
    if not plugins:
        errors.append("no WasmPlugin")
    for wp in plugins:
        name = wp["metadata"]["name"]
        cfg = wp["spec"].get("pluginConfig", {})
        pools = [p["name"] for p in cfg.get("pools", [])]
        header = cfg.get("routeHeader", DEFAULT_ROUTE_HEADER).lower()
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
                            f"{vs['metadata']['name']}: http[{i}] routes {header}={value!r}, which is not a pool of WasmPlugin {name} ({pools})"
                        )
                    routed.setdefault(value, []).extend(dests)
        for pool in pools:
            if pool not in routed:
                errors.append(f"WasmPlugin {name}: pool {pool!r} has no VirtualService route on {header}")
                continue
            for dst in routed[pool]:
                if dst.get("subset") != pool:
                    errors.append(f"pool {pool!r} is routed to subset {dst.get('subset')!r}, not {pool!r}")
                elif pool not in subsets.get(dst["host"], set()):
                    errors.append(f"pool {pool!r}: no DestinationRule subset {pool!r} for host {dst['host']}")
        if not has_default:
            errors.append(f"WasmPlugin {name}: the VirtualService has no default route (requests without {header} would get 404)")
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
