"""The Istio manifests in wasmplugin/: strict schema validation offline, pool
names that agree, and a pluginConfig the filter itself accepts in Envoy."""

import copy

import pytest

from stickysplit import envoy
from stickysplit.tools import manifests

SETS = manifests.manifest_sets()


@pytest.mark.parametrize("name", sorted(SETS))
def test_manifests_validate_strictly_and_agree(name):
    docs = manifests.load_docs(SETS[name])
    assert docs
    assert manifests.validate_schema(docs) == []
    assert manifests.check_agreement(docs) == []


def test_use_cases_have_what_they_need():
    kinds = {n: {d["kind"] for _, d in manifests.load_docs(p)} for n, p in SETS.items()}
    assert {"Namespace", "Deployment", "Service", "DestinationRule", "Gateway", "WasmPlugin",
            "VirtualService", "HorizontalPodAutoscaler"} <= kinds["kubernetes"]
    assert {"ServiceEntry", "DestinationRule", "VirtualService", "WasmPlugin", "Gateway"} <= kinds["vm"]
    dr = [d for _, d in manifests.load_docs(SETS["kubernetes/no-sidecar"]) if d["kind"] == "DestinationRule"]
    assert [d["spec"]["trafficPolicy"]["tls"]["mode"] for d in dr] == ["DISABLE"]
    wps = [d for _, d in manifests.load_docs(SETS["vm"]) if d["kind"] == "WasmPlugin"]
    assert [p["weight"] for p in wps[0]["spec"]["pluginConfig"]["pools"]] == [60, 40]


@pytest.mark.parametrize("name", ["kubernetes", "vm"])
def test_plugin_config_is_accepted_by_the_filter_in_envoy(name, workdir, base_config):
    [wp] = [d for _, d in manifests.load_docs(SETS[name]) if d["kind"] == "WasmPlugin"]
    code, out = envoy.validate(envoy.render(base_config, plugin=wp["spec"]["pluginConfig"]), workdir)
    assert code == 0, out[-2000:]
    assert "configured 2 pools" in out


def mutated(name, kind, change):
    docs = copy.deepcopy(manifests.load_docs(SETS[name]))
    for _, d in docs:
        if d["kind"] == kind:
            change(d)
            break
    return docs


def _typo_in_route(d):
    d["spec"]["http"][1]["match"][0]["headers"]["x-sticky-split-pool"]["exact"] = "pool-2"


def _drop_subset(d):
    d["spec"]["subsets"] = d["spec"]["subsets"][:1]


def _drop_default(d):
    d["spec"]["http"] = d["spec"]["http"][:2]


def _rename_pool(d):
    d["spec"]["pluginConfig"]["pools"][1]["name"] = "canary"


def _wrong_subset(d):
    d["spec"]["http"][1]["route"][0]["destination"]["subset"] = "pool1"


@pytest.mark.parametrize(
    "kind,change,error",
    [
        ("VirtualService", _typo_in_route, "'pool-2', which is not a pool"),
        ("DestinationRule", _drop_subset, "no DestinationRule subset 'pool2'"),
        ("VirtualService", _drop_default, "no default route"),
        ("WasmPlugin", _rename_pool, "pool 'canary' has no VirtualService route"),
        ("VirtualService", _wrong_subset, "pool 'pool2' is routed to subset 'pool1'"),
    ],
    ids=["route typo", "missing subset", "no default route", "renamed pool", "wrong subset"],
)
def test_agreement_check_catches_mistakes(kind, change, error):
    errors = manifests.check_agreement(mutated("kubernetes", kind, change))
    assert any(error in e for e in errors), errors


@pytest.mark.parametrize(
    "kind,change,error",
    [
        ("WasmPlugin", lambda d: d["spec"].update(failStrategey="FAIL_OPEN"), "failStrategey"),
        ("WasmPlugin", lambda d: d["spec"].update(phase="SOMETIME"), "SOMETIME"),
        ("WasmPlugin", lambda d: d["spec"].update(sha256="abc"), "abc"),
        ("WasmPlugin", lambda d: d["spec"].update(priority="high"), "high"),
        ("VirtualService", lambda d: d["spec"]["http"][0].update(rout=[]), "rout"),
        ("DestinationRule", lambda d: d["spec"]["trafficPolicy"].update({"tls": {"mode": "OFF"}}), "OFF"),
        ("Gateway", lambda d: d["spec"]["servers"][0]["port"].update(number="eighty"), "eighty"),
        ("Deployment", lambda d: d["spec"].update(replica=2), "replica"),
        ("HorizontalPodAutoscaler", lambda d: d["spec"].update(minReplicas="two"), "two"),
        ("Service", lambda d: d["spec"]["ports"][0].update(port="http"), "http"),
    ],
    ids=["unknown field", "bad enum", "bad sha256", "bad type", "unknown VS field", "bad tls mode",
         "bad gateway port", "unknown Deployment field", "bad HPA type", "bad Service port"],
)
def test_schema_validation_is_strict(kind, change, error):
    name = "kubernetes/no-sidecar" if kind == "DestinationRule" else "kubernetes"
    errors = manifests.validate_schema(mutated(name, kind, change))
    assert any(error in e for e in errors), errors


def test_vendored_schemas_are_documented():
    sources = (manifests.SCHEMAS / "SOURCES.md").read_text()
    import hashlib

    for path in manifests.SCHEMAS.glob("*.crd.yaml"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() in sources, path.name
