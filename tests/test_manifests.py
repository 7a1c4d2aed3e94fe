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
            "VirtualService", "HorizontalPodAutoscaler", "Telemetry"} <= kinds["kubernetes"]
    assert {"ServiceEntry", "DestinationRule", "VirtualService", "WasmPlugin", "Gateway"} <= kinds["vm"]
    dr = [d for _, d in manifests.load_docs(SETS["kubernetes/no-sidecar"]) if d["kind"] == "DestinationRule"]
    assert [d["spec"]["trafficPolicy"]["tls"]["mode"] for d in dr] == ["DISABLE"]
    wps = [d for _, d in manifests.load_docs(SETS["vm"]) if d["kind"] == "WasmPlugin"]
    assert [p["weight"] for p in wps[0]["spec"]["pluginConfig"]["pools"]] == [60, 40]
    assert {"Gateway", "HTTPRoute", "WasmPlugin", "Service"} <= kinds["gateway-api"]
    assert "VirtualService" not in kinds["gateway-api"]
    assert "TrafficExtension" in kinds["gateway-api/trafficextension"]
    assert "WasmPlugin" not in kinds["gateway-api/trafficextension"]
    for name in ("gateway-api", "gateway-api/trafficextension"):
        [plugin] = [d for _, d in manifests.load_docs(SETS[name]) if d["kind"] in ("WasmPlugin", "TrafficExtension")]
        assert plugin["spec"]["targetRefs"][0]["kind"] == "Gateway" and "selector" not in plugin["spec"]


@pytest.mark.parametrize("name", ["kubernetes", "vm", "gateway-api", "gateway-api/trafficextension"])
def test_plugin_config_is_accepted_by_the_filter_in_envoy(name, workdir, base_config):
    [wp] = [d for _, d in manifests.load_docs(SETS[name]) if d["kind"] in ("WasmPlugin", "TrafficExtension")]
    code, out = envoy.validate(envoy.render(base_config, plugin=manifests.plugin_config(wp)), workdir)
    assert code == 0, out[-2000:]
    assert "configured 2 pools" in out


def mutated(name, kind, change, sets=SETS):
    """The set's documents with `change` applied to the first of `kind`."""
    docs = copy.deepcopy(manifests.load_docs(sets[name]))
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


def _route_typo(d):
    d["spec"]["rules"][1]["matches"][0]["headers"][0]["value"] = "pool-2"


def _route_to_other_pool(d):
    d["spec"]["rules"][1]["backendRefs"][0]["name"] = "nginx-app-pool1"


def _no_default_rule(d):
    d["spec"]["rules"] = d["spec"]["rules"][:2]


def _regex_match(d):
    d["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] = "RegularExpression"


def _te_rename_pool(d):
    d["spec"]["wasm"]["pluginConfig"]["pools"][1]["name"] = "canary"


def _other_gateway(d):
    d["spec"]["targetRefs"][0]["name"] = "other-gateway"


@pytest.mark.parametrize(
    "name,kind,change,error",
    [
        ("gateway-api", "HTTPRoute", _route_typo, "'pool-2', which is not a pool"),
        ("gateway-api", "HTTPRoute", _route_to_other_pool, "Service 'nginx-app-pool1', which selects pool 'pool1'"),
        ("gateway-api", "HTTPRoute", _no_default_rule, "no default rule"),
        ("gateway-api", "HTTPRoute", _regex_match, "not Exact"),
        ("gateway-api/trafficextension", "TrafficExtension", _te_rename_pool, "pool 'canary' has no HTTPRoute rule"),
        ("gateway-api", "WasmPlugin", _other_gateway, "Gateway 'other-gateway', which is not in the set"),
    ],
    ids=["route typo", "route to another pool's Service", "no default rule", "regex match", "renamed pool",
         "targetRefs to a missing Gateway"],
)
def test_agreement_check_catches_gateway_api_mistakes(name, kind, change, error):
    errors = manifests.check_agreement(mutated(name, kind, change))
    assert any(error in e for e in errors), errors


@pytest.mark.parametrize(
    "name,kind,change,error",
    [
        ("gateway-api", "HTTPRoute", lambda d: d["spec"]["rules"][0].update(backendRef=[]), "backendRef"),
        ("gateway-api", "Gateway", lambda d: d["spec"]["listeners"][0].update(port="eighty"), "eighty"),
        ("gateway-api/trafficextension", "TrafficExtension", lambda d: d["spec"]["wasm"].update(failStrategy="OPEN"), "OPEN"),
        ("gateway-api/trafficextension", "TrafficExtension", lambda d: d["spec"].update(pluginConfig={}), "pluginConfig"),
    ],
    ids=["unknown HTTPRoute field", "bad listener port", "bad failStrategy", "pluginConfig outside wasm"],
)
def test_gateway_api_and_traffic_extension_schemas_are_strict(name, kind, change, error):
    errors = manifests.validate_schema(mutated(name, kind, change))
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
    import hashlib

    for directory in manifests.SCHEMAS:
        sources = (directory / "SOURCES.md").read_text()
        paths = list(directory.glob("*.crd.yaml"))
        assert paths
        for path in paths:
            assert hashlib.sha256(path.read_bytes()).hexdigest() in sources, path.name


def test_telemetry_adds_the_pool_to_istio_request_metrics_on_the_plugin_gateway():
    """The Telemetry selects the gateway the WasmPlugin runs on and adds one
    dimension, read from the filter state the filter writes with
    exportDecision, to the request count and the request-duration histogram."""
    docs = [d for _, d in manifests.load_docs(SETS["kubernetes"])]
    [telemetry] = [d for d in docs if d["kind"] == "Telemetry"]
    [plugin] = [d for d in docs if d["kind"] == "WasmPlugin"]
    assert telemetry["spec"]["selector"] == plugin["spec"]["selector"]
    assert telemetry["metadata"]["namespace"] == plugin["metadata"]["namespace"]
    overrides = telemetry["spec"]["metrics"][0]["overrides"]
    assert sorted(o["match"]["metric"] for o in overrides) == ["REQUEST_COUNT", "REQUEST_DURATION"]
    for o in overrides:
        assert o["tagOverrides"] == {"sticky_split_pool": {"value": "filter_state['wasm.sticky_split.pool']"}}


def _as_v1alpha1(d):
    d["apiVersion"] = "telemetry.istio.io/v1alpha1"


@pytest.mark.parametrize(
    "change,error",
    [
        (lambda d: d["spec"]["metrics"][0]["overrides"][0]["match"].update(metric="REQUEST_TOTAL"), "REQUEST_TOTAL"),
        (lambda d: d["spec"]["metrics"][0]["overrides"][0]["tagOverrides"]["sticky_split_pool"].update(valu="x"),
         "valu"),
        (lambda d: d["spec"]["metrics"][0].update(override=[]), "override"),
        (lambda d: d["spec"]["metrics"][0]["overrides"][0]["tagOverrides"]["sticky_split_pool"].update(
            operation="INSERT"), "INSERT"),
    ],
    ids=["bad metric", "unknown tagOverride field", "unknown metrics field", "bad operation"],
)
def test_telemetry_schema_is_strict(change, error):
    errors = manifests.validate_schema(mutated("kubernetes", "Telemetry", change))
    assert any(error in e for e in errors), errors


def test_telemetry_validates_as_v1alpha1_too():
    assert manifests.validate_schema(mutated("kubernetes", "Telemetry", _as_v1alpha1)) == []


EXTRA_STAT_TAGS = ("sidecar.istio.io/extraStatTags", "reason,class,pool")


@pytest.mark.parametrize("name", sorted(SETS))
def test_the_gateway_the_plugin_runs_on_carries_extra_stat_tags(name):
    """Istio labels the filter's counters only when the gateway pod carries
    the annotation: on the pod template of the Deployment the plugin's
    selector picks, or for Gateway API in the targeted Gateway's
    infrastructure.annotations, which Istio copies to the pods it deploys."""
    docs = [d for _, d in manifests.load_docs(SETS[name])]
    [plugin] = [d for d in docs if d["kind"] in ("WasmPlugin", "TrafficExtension")]
    key, value = EXTRA_STAT_TAGS
    if "selector" in plugin["spec"]:
        wanted = plugin["spec"]["selector"]["matchLabels"]
        pods = [d["spec"]["template"] for d in docs if d["kind"] == "Deployment"
                and d["metadata"]["namespace"] == plugin["metadata"]["namespace"]
                and wanted.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(pods) == 1, f"{name}: {len(pods)} gateway Deployments match {wanted}"
        assert pods[0]["metadata"]["annotations"][key] == value
        assert pods[0]["metadata"]["annotations"]["inject.istio.io/templates"] == "gateway"
    else:
        [ref] = plugin["spec"]["targetRefs"]
        [gateway] = [d for d in docs if d["kind"] == "Gateway" and d["metadata"]["name"] == ref["name"]]
        assert gateway["spec"]["infrastructure"]["annotations"][key] == value

# ---- Envoy Gateway: wasmplugin/envoy-gateway/ ----

EG_SETS = manifests.envoy_gateway_sets()
GENERATIONS = ["v1.5.9", "v1.8.3", "v1.9.0"]


@pytest.mark.parametrize("name", sorted(EG_SETS))
def test_envoy_gateway_sets_validate_strictly_and_agree(name):
    docs = manifests.load_docs(EG_SETS[name])
    kinds = {d["kind"] for _, d in docs}
    assert {"Gateway", "HTTPRoute", "Service", "EnvoyExtensionPolicy", "EnvoyProxy", "Deployment"} <= kinds
    assert manifests.validate_envoy_gateway(docs) == []
    assert manifests.check_envoy_gateway_agreement(docs) == []


def eg_policy(name="envoy-gateway"):
    [p] = [d for _, d in manifests.load_docs(EG_SETS[name]) if d["kind"] == "EnvoyExtensionPolicy"]
    return copy.deepcopy(p)


def _section(d):
    d["spec"]["targetRefs"][0]["sectionName"] = "default"


def _merge_type(d):
    d["spec"]["mergeType"] = "StrategicMerge"


@pytest.mark.parametrize(
    "change,refused_by,error",
    [
        (lambda d: None, [], ""),
        (_section, ["v1.5.9"], "this policy does not yet support the sectionName field"),
        (_merge_type, ["v1.5.9", "v1.8.3"], "'mergeType' was unexpected"),
        (lambda d: d["spec"]["wasm"][0].update(failopen=True), GENERATIONS, "'failopen' was unexpected"),
        (lambda d: d["spec"]["wasm"][0]["code"].update(type="HTTP"), GENERATIONS, "If type is HTTP, http field needs to be set"),
        (lambda d: d["spec"]["wasm"][0]["code"].update(type="ConfigMap"), GENERATIONS, "ConfigMap"),
        (lambda d: d["spec"]["targetRefs"][0].update(kind="Service"), GENERATIONS, "can only have a targetRefs[*].kind"),
        (lambda d: d["spec"]["targetRefs"][0].update(group="gateway.envoyproxy.io"), GENERATIONS, "targetRefs[*].group"),
        (lambda d: d["spec"]["wasm"][0]["env"].update(hostKeys="STICKY_SPLIT_KEY"), GENERATIONS, "is not of type 'array'"),
    ],
    ids=["shipped", "sectionName", "mergeType", "unknown field", "HTTP without http", "ConfigMap code",
         "target kind", "target group", "hostKeys not a list"],
)
def test_envoy_extension_policy_against_each_crd_generation(change, refused_by, error):
    schemas = manifests.envoy_extension_policy_schemas()
    assert sorted(schemas) == GENERATIONS
    doc = eg_policy()
    change(doc)
    for generation in GENERATIONS:
        errors = manifests.validate_envoy_extension_policy(doc, generation, schemas)
        if generation in refused_by:
            assert any(error in e for e in errors), (generation, errors)
        else:
            assert errors == [], (generation, errors)


def eg_mutated(name, kind, change):
    return mutated(name, kind, change, EG_SETS)


def _rules_only(d):
    ref = d["spec"]["targetRefs"][0]
    d["spec"]["targetRefs"] = [dict(ref, sectionName="pool1"), dict(ref, sectionName="pool2")]


def _default_only(d):
    d["spec"]["targetRefs"][0]["sectionName"] = "default"


def _eg_rename_pool(d):
    d["spec"]["wasm"][0]["config"]["pools"][1]["name"] = "canary"


def _no_host_key(d):
    del d["spec"]["wasm"][0]["env"]


def _drop_env(d):
    d["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["env"] = []


@pytest.mark.parametrize(
    "name,kind,change,error",
    [
        ("envoy-gateway", "EnvoyExtensionPolicy", _rules_only, "leave out HTTPRoute nginx-app rules[2] (default), the default rule"),
        ("envoy-gateway", "EnvoyExtensionPolicy", _default_only, "leave out HTTPRoute nginx-app rules[1] (pool2), which routes x-sticky-split-pool='pool2'"),
        ("envoy-gateway", "EnvoyExtensionPolicy", lambda d: d["spec"]["targetRefs"][0].update(name="other"), "HTTPRoute 'other', which is not in the set"),
        ("envoy-gateway/gateway-target", "EnvoyExtensionPolicy", lambda d: d["spec"]["targetRefs"][0].update(sectionName="https"), "the default rule"),
        ("envoy-gateway", "EnvoyExtensionPolicy", _eg_rename_pool, "pool 'canary' has no HTTPRoute rule"),
        ("envoy-gateway", "HTTPRoute", _route_typo, "'pool-2', which is not a pool"),
        ("envoy-gateway", "HTTPRoute", _no_default_rule, "no default rule"),
        ("envoy-gateway", "EnvoyExtensionPolicy", _no_host_key, "cookie names STICKY_SPLIT_KEY but env.hostKeys does not pass it"),
        ("envoy-gateway", "EnvoyProxy", _drop_env, "env.hostKeys STICKY_SPLIT_KEY is set by no EnvoyProxy"),
        ("envoy-gateway", "Gateway", lambda d: d["spec"].update(gatewayClassName="istio"), "is not 'eg'"),
        ("envoy-gateway", "Gateway", lambda d: d["spec"]["infrastructure"]["parametersRef"].update(name="x"), "not an EnvoyProxy in the set"),
    ],
    ids=["pool rules only", "default rule only", "missing HTTPRoute", "another listener", "renamed pool",
         "route typo", "no default rule", "signing key not in hostKeys", "hostKey not set by the EnvoyProxy",
         "Istio's class", "parametersRef to nothing"],
)
def test_envoy_gateway_agreement_catches_mistakes(name, kind, change, error):
    errors = manifests.check_envoy_gateway_agreement(eg_mutated(name, kind, change))
    assert any(error in e for e in errors), errors


def test_envoy_proxy_env_is_validated_as_a_container_env():
    def bad_ref(d):
        d["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["env"][0]["valueFrom"] = {
            "secretKeyRef": {"name": "sticky-split-signing-key", "keys": "key"}}

    errors = manifests.validate_envoy_gateway(eg_mutated("envoy-gateway", "EnvoyProxy", bad_ref))
    assert any("container.env.0.valueFrom.secretKeyRef: 'key' is a required property" in e for e in errors), errors


def test_vendored_envoy_gateway_schemas_are_documented():
    import hashlib

    sources = (manifests.EG_SCHEMAS / "SOURCES.md").read_text()
    paths = sorted(manifests.EG_SCHEMAS.glob("*.crd.yaml"))
    assert len(paths) == 3
    for path in paths:
        assert hashlib.sha256(path.read_bytes()).hexdigest() in sources, path.name
