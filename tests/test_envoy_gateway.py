"""The filter delivered as Envoy Gateway delivers it: each shipped
EnvoyExtensionPolicy (wasmplugin/envoy-gateway/, on the HTTPRoute and on the
Gateway) translated into the listener and route table Envoy Gateway sends
(the disabled filter, enabled per route; names, vm_id, config printed as the
API server prints it, remote code with its sha256, fail_open, host_env_keys),
loaded from files by an Envoy run with Envoy Gateway's drain flags, then
changed under load. The Envoy Gateway release imitated is the newest one that
ships the running Envoy's line (main for 1.40)."""

import copy
import hashlib
import json
import os
import time

import pytest

from helpers import assert_vm_healthy
from stickysplit import envoy
from stickysplit import envoy_gateway as eg
from stickysplit.http import Client
from stickysplit.oci import build_layout
from stickysplit.live import KeepAliveLoad, Load
from stickysplit.stats import ALPHA, split_verdict
from stickysplit.testbed import DEBUG_HEADER
from stickysplit.tools import manifests

SETS = manifests.envoy_gateway_sets()
KEY_ENV = "STICKY_SPLIT_KEY"
HOST_ENV = {KEY_ENV: "a signing key of thirty-two bytes"}
IMAGE = "oci://ghcr.io/example/sticky-split:0.1.0"

# A second HTTPRoute on the same Gateway that the HTTPRoute policy does not
# target, to a Service of its own.
OTHER = [
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
     "metadata": {"name": "other-app", "namespace": "nginx-app"},
     "spec": {"parentRefs": [{"name": "nginx-gateway"}],
              "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
                         "backendRefs": [{"name": "other-app", "port": 80}]}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other-app", "namespace": "nginx-app"},
     "spec": {"selector": {"app": "other-app"}, "ports": [{"port": 80}]}},
]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """scripts/package-oci's image of the built module: (layout, digest)."""
    return build_layout(tmp_path_factory.mktemp("eg-image"))


def registry(image, **more):
    return eg.Registry(images={IMAGE: image[0], **more})


def shipped(name, image):
    """The set's documents, the policy pinned to the built image (as
    `scripts/package-oci --pin` does)."""
    docs = copy.deepcopy([d for _, d in manifests.load_docs(SETS[name])])
    policy(docs)["spec"]["wasm"][0]["code"]["image"]["sha256"] = image[1]
    return docs


def policy(docs):
    [p] = [d for d in docs if d["kind"] == "EnvoyExtensionPolicy"]
    return p


def wasm_entry(docs):
    return policy(docs)["spec"]["wasm"][0]


def with_config(docs, **changes):
    docs = copy.deepcopy(docs)
    wasm_entry(docs)["config"].update(changes)
    return docs


def pools(**weights):
    return [{"name": n, "weight": w} for n, w in weights.items()]


def listener_filters(gw):
    """The HTTP filters of the gateway listener as Envoy holds it."""
    dump = json.loads(gw.envoy.admin("/config_dump?resource=dynamic_listeners"))
    [listener] = [c["active_state"]["listener"] for c in dump["configs"] if c["name"] == gw.listener]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]


def routes_held(gw):
    dump = json.loads(gw.envoy.admin("/config_dump?resource=dynamic_route_configs"))
    return [r for c in dump["configs"] for vh in c["route_config"]["virtual_hosts"] for r in vh["routes"]]


def new_user(port, path="/", headers=()):
    return Client(port, keepalive=False).get(path, list(headers))


def signed_values(port, cookie, want=("pool1", "pool2")):
    """A cookie value the gateway issued for each pool in `want`."""
    values = {}
    for _ in range(200):
        r = new_user(port)
        values.setdefault(r.served_by, r.issued(cookie))
        if set(want) <= set(values):
            return {p: values[p] for p in want}
    raise AssertionError(f"no cookie issued for some of {want}: {values}")


@pytest.mark.parametrize("name", sorted(SETS))
def test_shipped_policy_loads_splits_pins_and_covers_its_routes(name, workdir, image):
    docs = shipped(name, image) + copy.deepcopy(OTHER)
    entry = wasm_entry(docs)
    weights = {p["name"]: p["weight"] for p in entry["config"]["pools"]}
    cookie = entry["config"]["cookie"]["name"]
    filter_name = eg.filter_name(policy(docs), 0)
    with eg.EnvoyGatewayProxy(workdir, docs, registry=registry(image), host_env=HOST_ENV) as gw:
        # the listener holds the filter disabled, as Envoy Gateway builds it
        [wasm] = [f for f in listener_filters(gw) if f["name"].startswith(eg.FILTER_PREFIX)]
        config = wasm["typed_config"]["config"]
        assert wasm["name"] == filter_name == "envoy.filters.http.wasm/envoyextensionpolicy/nginx-app/sticky-split/wasm/0"
        assert wasm["disabled"] is True
        assert config["name"] == config["vm_config"]["vm_id"] == eg.ir_name(policy(docs), 0)
        assert config["fail_open"] is True and "failure_policy" not in config
        assert config["vm_config"]["environment_variables"] == {"host_env_keys": [KEY_ENV]}
        remote = config["vm_config"]["code"]["remote"]
        assert remote["sha256"] == hashlib.sha256(envoy.WASM.read_bytes()).hexdigest()
        assert remote["http_uri"]["cluster"] == "wasm_cluster"
        assert config["configuration"]["value"] == eg.api_server_json(entry["config"])
        assert config["configuration"]["value"].startswith('{"cookie":{"httpOnly":true,"maxAge":2592000,')
        assert len(gw.server.fetches) == 1, gw.server.fetches
        # enabled on the routes the policy covers, with an empty FilterConfig
        enabled = {r["name"]: r.get("typed_per_filter_config", {}).get(filter_name) for r in routes_held(gw)}
        ours = [n for n in enabled if n.startswith("httproute/nginx-app/nginx-app/")]
        assert len(ours) == 3 and all(enabled[n] == {"@type": eg.FILTER_CONFIG, "config": {}} for n in ours), enabled
        other = "httproute/nginx-app/other-app/rule/0/match/0/*"
        assert (enabled[other] is not None) == (name == "envoy-gateway/gateway-target")
        assert "configured 2 pools" in gw.envoy.log_text()

        counts, issued = {}, []
        for _ in range(1000):
            r = new_user(gw.gateway)
            assert r.status == 200, r.body
            value = r.issued(cookie)
            assert value.rpartition(".")[0] == r.served_by, value  # signed: pool.MAC
            counts[r.served_by] = counts.get(r.served_by, 0) + 1
            issued.append(value)
        ok, stat, df, p = split_verdict([counts.get(n, 0) for n in weights], list(weights.values()), ALPHA)
        print(f"\n{name}: 1000 new users {counts} vs {weights}: chi-square {stat:.2f}, p = {p:.3g}")
        assert ok, f"{counts} vs {weights}: p={p:.3g}"
        with Client(gw.gateway) as c:
            for value in issued[:100]:
                r = c.get("/", [("Cookie", f"a=1; {cookie}={value}; b=2")])
                assert (r.status, r.served_by, r.issued(cookie)) == (200, value.rpartition(".")[0], None)

        # the route the HTTPRoute policy does not cover: no filter, so no
        # cookie and no routing header; under the Gateway policy it has both
        r = new_user(gw.gateway, "/other")
        assert (r.status, r.served_by) == (200, "other-app")
        if name == "envoy-gateway":
            assert (r.issued(cookie), r.header("x-seen-pool")) == (None, None)
        else:
            assert r.issued(cookie) is not None and r.header("x-seen-pool") in weights
        assert_vm_healthy(gw.envoy)


def test_a_policy_on_the_header_rules_only_never_sees_new_users(workdir, image):
    """targetRefs with sectionName on the two pool rules (Envoy Gateway
    1.6+): check-manifests refuses it, and delivered anyway, requests
    without the header take the default rule with no filter (no cookie),
    while a forged header reaches a covered rule and the filter."""
    docs = shipped("envoy-gateway", image)
    ref = policy(docs)["spec"]["targetRefs"][0]
    policy(docs)["spec"]["targetRefs"] = [dict(ref, sectionName="pool1"), dict(ref, sectionName="pool2")]
    errors = manifests.check_envoy_gateway_agreement([(None, d) for d in docs])
    assert any("leave out HTTPRoute nginx-app rules[2] (default), the default rule" in e for e in errors), errors
    with eg.EnvoyGatewayProxy(workdir, docs, registry=registry(image), host_env=HOST_ENV) as gw:
        for _ in range(20):
            r = new_user(gw.gateway)
            # the default rule's pool, reached with no route header: the sample backend calls that misrouted
            assert (r.status, r.served_by, r.header("x-seen-pool"), r.issued("nginx-app-subset")) == (421, "pool1", None, None)
        r = new_user(gw.gateway, headers=[("x-sticky-split-pool", "pool2")])
        assert r.status == 200 and r.issued("nginx-app-subset") is not None


def with_image(docs, url, sha256):
    docs = copy.deepcopy(docs)
    wasm_entry(docs)["code"]["image"] = {"url": url, "sha256": sha256}
    return docs


@pytest.mark.parametrize("name", sorted(SETS))
@pytest.mark.parametrize("fail_open", [False, True], ids=["failOpen-unset", "failOpen-true"])
@pytest.mark.parametrize("cause", ["sha256", "unreachable"])
def test_a_module_envoy_gateway_cannot_fetch_or_verify(cause, fail_open, name, workdir, image):
    """image.sha256 that is not the image's digest, or an image Envoy
    Gateway cannot pull: without failOpen the routes in scope answer 500;
    with it they go on without the filter (the default rule, no cookie)."""
    docs = shipped(name, image) + copy.deepcopy(OTHER)
    docs = (with_image(docs, IMAGE, "0" * 64) if cause == "sha256"
            else with_image(docs, "oci://registry.invalid/sticky-split:0.1.0", image[1]))
    if not fail_open:
        del wasm_entry(docs)["failOpen"]
    with eg.EnvoyGatewayProxy(workdir, docs, registry=registry(image), host_env=HOST_ENV) as gw:
        assert not [f for f in listener_filters(gw) if f["name"].startswith(eg.FILTER_PREFIX)]
        assert gw.server.fetches == []
        for headers in ([], [("Cookie", "nginx-app-subset=pool2")], [("x-sticky-split-pool", "pool2")]):
            r = new_user(gw.gateway, headers=headers)
            assert r.issued("nginx-app-subset") is None
            if not fail_open:
                assert r.status == 500
            elif headers and headers[0][0] == "x-sticky-split-pool":
                # the pool2 rule on the client's own header: nothing checks it
                assert (r.status, r.served_by) == (200, "pool2")
            else:
                assert (r.status, r.served_by, r.header("x-seen-pool")) == (421, "pool1", None)
        other = new_user(gw.gateway, "/other")
        covered = name == "envoy-gateway/gateway-target"
        assert other.status == (500 if covered and not fail_open else 200)


def variant_module(workdir):
    """The built module with a custom section appended: the same code, a
    different sha256 (a new release, as far as Envoy can tell)."""
    name = b"sticky-split-test-variant"
    payload = bytes([len(name)]) + name + b"1"
    path = workdir / f"variant-{time.monotonic_ns()}.wasm"
    path.write_bytes(envoy.WASM.read_bytes() + b"\x00" + bytes([len(payload)]) + payload)
    return path


@pytest.mark.parametrize("release", ["1.7.5", "1.9.0"])
def test_a_new_module_envoy_cannot_fetch(release, workdir, image):
    """Envoy fetches a module from Envoy Gateway's server only when its
    sha256 is new: a weight edit works with the server down; a new module it
    cannot fetch leaves the old listener serving while the new one warms
    (1.8.3+, 10 retries), or, with Envoy's default single retry (before
    1.8.3), takes the listener over with the filter failed open (the default
    rule for everyone)."""
    docs = shipped("envoy-gateway", image)
    layout2, digest2 = build_layout(workdir, module=variant_module(workdir))
    reg = registry(image, **{"oci://ghcr.io/example/sticky-split:0.2.0": layout2})
    with eg.EnvoyGatewayProxy(workdir, docs, registry=reg, host_env=HOST_ENV, eg=release) as gw:
        gw.server.broken = True
        assert gw.apply(with_config(docs, pools=pools(pool1=0, pool2=100))) == "updated"
        assert {new_user(gw.gateway).served_by for _ in range(20)} == {"pool2"}
        fetched = len(gw.server.fetches)
        new = with_image(with_config(docs, pools=pools(pool1=100, pool2=0)),
                         "oci://ghcr.io/example/sticky-split:0.2.0", digest2)
        # 1.9.0: wait 3 s for a listener that stays warming; before: a
        # second or less until the single retry has failed
        outcome = gw.apply(new, timeout=3 if release == "1.9.0" else 10)
        answers = {(r.status, r.served_by, r.issued("nginx-app-subset") is not None)
                   for r in (new_user(gw.gateway) for _ in range(20))}
        assert len(gw.server.fetches) > fetched
        if release == "1.9.0":
            assert outcome == "warming" and gw.listener_counts()["total_listeners_warming"] == 1
            assert answers == {(200, "pool2", True)}  # the old listener, its config
        else:
            assert outcome == "updated"
            assert answers == {(421, "pool1", False)}  # no filter: the default rule
            assert "failed to load" in gw.envoy.log_text()


@pytest.mark.parametrize("release", ["1.7.5", "1.9.0"])
def test_a_proxy_starting_while_the_module_cannot_be_fetched(release, workdir, image):
    """A new proxy (a restart, a scale-up) while Envoy Gateway's server
    cannot serve the module: with 1.8.3+'s retries Envoy keeps its listener
    warming and does not become ready; with Envoy's default single retry it
    is ready within a second, the filter failed (failOpen: the default rule
    for everyone, no cookie)."""
    gw = eg.EnvoyGatewayProxy(workdir, shipped("envoy-gateway", image), registry=registry(image),
                              host_env=HOST_ENV, eg=release)
    gw.server.broken = True
    gw.envoy_start_timeout = 3
    if release == "1.9.0":
        with pytest.raises(RuntimeError, match="not ready after 3s"):
            gw.__enter__()
        assert len(gw.server.fetches) >= 2
        return
    with gw:
        r = new_user(gw.gateway)
        assert (r.status, r.served_by, r.issued("nginx-app-subset")) == (421, "pool1", None)
        assert "failed to load" in gw.envoy.log_text()


def phase_split(results, weights):
    new = [r for r in results if r[1] == "new"]
    names = list(weights)
    counts = [sum(1 for r in new if r[3] == p) for p in names]
    assert len(new) >= 100 and sum(counts) == len(new), (len(new), counts)
    ok, stat, df, p = split_verdict(counts, [weights[n] for n in names], ALPHA)
    return ok, dict(zip(names, counts)), p


@pytest.mark.parametrize("name", sorted(SETS))
def test_weight_edit_under_load_is_a_listener_update_that_drains(name, workdir, image):
    """80:20 -> 50:50 while new users (a new connection each), pinned users
    and keep-alive clients keep coming, with Envoy Gateway's server down (the
    module is not fetched again): no request fails; each phase's new users
    follow its weights; every keep-alive connection opened before the edit
    gets `Connection: close` on its first response after it and is closed,
    an idle one too when it next sends."""
    cookie = "nginx-app-subset"
    docs = with_config(shipped(name, image), debugHeader=DEBUG_HEADER, pools=pools(pool1=80, pool2=20))
    with eg.EnvoyGatewayProxy(workdir, docs, registry=registry(image), host_env=HOST_ENV) as gw:
        values = signed_values(gw.gateway, cookie)
        idle = Client(gw.gateway)
        assert idle.get("/").status == 200
        pinned = [("Cookie", f"{cookie}={values['pool2']}")]
        with Load(gw.gateway, cookie, values=values, threads=2) as load, \
                KeepAliveLoad(gw.gateway, pinned, threads=3) as keepalive:
            time.sleep(2.5)
            gw.server.broken = True
            counts_before = gw.listener_counts()
            t_edit = time.monotonic()
            assert gw.apply(with_config(docs, pools=pools(pool1=50, pool2=50))) == "updated"
            t_active = time.monotonic()
            time.sleep(2.5)
        t_end = time.monotonic()
        time.sleep(0.5)
        late = idle.get("/", pinned)
        counts_after = gw.listener_counts()
        assert_vm_healthy(gw.envoy)
    failures = [r for r in load.results if r[2] != 200 or r[5]] + [r for r in keepalive.results if r[3] != 200 or r[5]]
    assert not failures, f"{len(failures)} failed, e.g. {failures[:3]}"
    assert len(gw.server.fetches) == 1, "the weight edit fetched the module again"
    updated = {k: counts_after[k] - counts_before.get(k, 0) for k in ("listener_modified", "listener_in_place_updated")}
    assert updated["listener_modified"] == 1, updated

    before = phase_split(load.between(0, t_edit), {"pool1": 80, "pool2": 20})
    after = phase_split(load.between(t_active + 0.2, t_end), {"pool1": 50, "pool2": 50})
    assert before[0] and after[0], (before, after)
    pinned_rows = [r for r in load.results if r[1] != "new"]
    assert {(r[1], r[3], r[4]) for r in pinned_rows} == {("pool1", "pool1", "sticky"), ("pool2", "pool2", "sticky")}

    # keep-alive connections opened before the edit
    old = {}
    for start, thread, serial, status, connection, _ in keepalive.results:
        if serial == 1:
            old.setdefault(thread, []).append((start, connection))
    closes = []
    for thread, rows in old.items():
        assert rows[-1][1] == "close", f"connection {thread} was never told to close"
        assert all(c is None for _, c in rows[:-1]), f"connection {thread}: close before its last response"
        assert rows[-1][0] >= t_edit, f"connection {thread}: closed before the edit"
        # once the new listener was seen active, the old connection served one more response at most
        late_rows = [s for s, _ in rows if s >= t_active]
        assert len(late_rows) <= 1, f"connection {thread} served {len(late_rows)} requests after the update was active"
        closes.append(rows[-1][0] - t_edit)
    assert len(closes) == 3
    assert late.header("connection") == "close" and late.status == 200
    print(f"\n{name}: {len(load.results)} new-connection requests, {len(keepalive.results)} keep-alive, 0 failed; "
          f"before {before[1]} p={before[2]:.3g}, after {after[1]} p={after[2]:.3g}; listener update {updated}; "
          f"'Connection: close' on each old keep-alive connection {', '.join(f'{c * 1000:.0f}' for c in sorted(closes))} ms "
          f"after the edit; idle connection: closed on its next response")


@pytest.mark.skipif(os.environ.get("STICKY_SPLIT_DRAIN_MINUTE") != "1",
                    reason="a minute long: STICKY_SPLIT_DRAIN_MINUTE=1 runs it")
def test_idle_keepalive_connections_are_closed_by_the_drain(workdir, image):
    """Idle keep-alive connections from before a weight edit, never used
    again: Envoy closes them by the end of Envoy Gateway's 60 s drain time,
    not at once."""
    import socket

    docs = shipped("envoy-gateway", image)
    with eg.EnvoyGatewayProxy(workdir, docs, registry=registry(image), host_env=HOST_ENV) as gw:
        socks = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", gw.gateway), timeout=90)
            s.sendall(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            socks.append(s)
        t_edit = time.monotonic()
        assert gw.apply(with_config(docs, pools=pools(pool1=50, pool2=50))) == "updated"
        closed = []
        for s in socks:
            assert s.recv(1) == b""  # blocks until Envoy closes it
            closed.append(time.monotonic() - t_edit)
            s.close()
    print(f"\nidle keep-alive connections closed {', '.join(f'{c:.1f}' for c in sorted(closed))} s after the edit")
    assert all(5 < c < 62 for c in closed), closed


def test_signing_key_from_host_env_keys(workdir, image, monkeypatch):
    """The key reaches the VM only as a variable of the Envoy process,
    passed by env.hostKeys. Without it the filter refuses its config; the
    listener is taken all the same and the filter fails open (the shipped
    failOpen): the default rule, no cookie."""
    docs = shipped("envoy-gateway", image)
    cookie = "nginx-app-subset"
    with eg.EnvoyGatewayProxy(workdir, docs, registry=registry(image), host_env=HOST_ENV) as gw, Client(gw.gateway) as c:
        value = c.get("/").issued(cookie)
        pool, _, mac = value.rpartition(".")
        assert len(mac) == 22
        assert c.get("/", [("Cookie", f"{cookie}={value}")]).issued(cookie) is None
        assert c.get("/", [("Cookie", f"{cookie}={pool}")]).issued(cookie) is not None, "unsigned is forged"
        assert HOST_ENV[KEY_ENV] not in gw.envoy.log_text()
    # an Envoy whose process lacks the variable (no EnvoyProxy sets it)
    monkeypatch.delenv(KEY_ENV, raising=False)
    with eg.EnvoyGatewayProxy(workdir, docs, registry=registry(image)) as gw:
        r = new_user(gw.gateway)
        assert (r.status, r.served_by, r.issued(cookie)) == (421, "pool1", None)
        log = gw.envoy.log_text()
    assert f"configuration refused: cookie.signingKeyEnv: environment variable {KEY_ENV} is not set in the VM" in log


@pytest.mark.parametrize("fail_open", [True, False], ids=["failOpen-true", "failOpen-unset"])
def test_a_refused_config(fail_open, workdir, image):
    """A config edit the filter refuses (a misspelt field): the running
    Envoy, which has the module cached, rejects the new listener and keeps
    serving the old config. An Envoy that starts from it (a new or restarted
    proxy pod: the module is fetched first, the config applied later) takes
    the listener, the plugin fails to load, and the routes pass through
    without the filter (failOpen) or answer 503."""
    docs = shipped("envoy-gateway", image)
    if not fail_open:
        del wasm_entry(docs)["failOpen"]
    bad = with_config(docs, pools=pools(pool1=50) + [{"name": "pool2", "weight": 1, "wieght": 5}])
    with eg.EnvoyGatewayProxy(workdir, docs, registry=registry(image), host_env=HOST_ENV) as gw:
        assert gw.apply(bad) == "rejected"
        r = new_user(gw.gateway)
        assert r.status == 200 and r.issued("nginx-app-subset") is not None
        assert "configuration refused: pools[1].wieght: unknown field" in gw.envoy.log_text()
    with eg.EnvoyGatewayProxy(workdir, bad, registry=registry(image), host_env=HOST_ENV) as gw:
        r = new_user(gw.gateway)
        if fail_open:
            assert (r.status, r.served_by, r.issued("nginx-app-subset")) == (421, "pool1", None)
        else:
            assert r.status == 503
        log = gw.envoy.log_text()
    assert "configuration refused: pools[1].wieght: unknown field" in log
    assert "failed to load" in log


def test_translation_follows_envoy_gateway():
    p = {"kind": "EnvoyExtensionPolicy", "metadata": {"name": "sticky-split", "namespace": "nginx-app"}}
    assert eg.ir_name(p, 1) == "envoyextensionpolicy/nginx-app/sticky-split/wasm/1"
    assert eg.filter_name(p, 0) == "envoy.filters.http.wasm/envoyextensionpolicy/nginx-app/sticky-split/wasm/0"
    assert eg.image_ref("ghcr.io/x/y") == "oci://ghcr.io/x/y:latest"
    assert eg.image_ref("oci://localhost:5000/x/y") == "oci://localhost:5000/x/y:latest"
    assert eg.image_ref("ghcr.io/x/y@sha256:ab") == "oci://ghcr.io/x/y@sha256:ab"
    printed = eg.api_server_json({"z": [80, 2592000, 0.5, 80.0, 1e21], "a": "<a&b>\u2028é", "m": {"b": True, "a": None}})
    assert printed == '{"a":"\\u003ca\\u0026b\\u003e\\u2028é","m":{"a":null,"b":true},"z":[80,2592000,0.5,80,1e+21]}'
    server = eg.ModuleServer(salt="s")
    path = server.path_for("oci://ghcr.io/x/y:1")
    assert path.endswith("=.wasm") and len(path) == len("/") + 44 + len(".wasm")
    assert eg.eg_for_envoy("1.36.4") == "1.6.7" and eg.eg_for_envoy("1.40.0") == eg.EG_MAIN
    # the default rule, listed first, still comes after the header rules
    gateway = {"kind": "Gateway", "metadata": {"name": "g", "namespace": "n"},
               "spec": {"listeners": [{"name": "http", "port": 80}]}}
    route = {"kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "n"}, "spec": {
        "parentRefs": [{"name": "g"}],
        "rules": [{"backendRefs": [{"name": "s1"}]},
                  {"matches": [{"headers": [{"name": "h", "value": "p2"}]}], "backendRefs": [{"name": "s2"}]}]}}
    entries = eg.translate_routes(gateway, gateway["spec"]["listeners"][0], [route])
    assert [e["route"]["name"] for e in entries] == ["httproute/n/r/rule/1/match/0/*", "httproute/n/r/rule/0/match/0/*"]
    # a rule-level policy wins over a route-level one, which wins over the Gateway's
    on = lambda kind, name, **section: {"kind": "EnvoyExtensionPolicy", "metadata": {"name": name, "namespace": "n"},  # noqa: E731
                                        "spec": {"targetRefs": [{"kind": kind, "name": {"HTTPRoute": "r", "Gateway": "g"}[kind], **section}]}}
    policies = [on("Gateway", "a"), on("HTTPRoute", "b"), on("HTTPRoute", "c", sectionName="pool2")]
    listener = gateway["spec"]["listeners"][0]
    assert eg.policy_for(policies, gateway, listener, ("n", "r"), "pool2")["metadata"]["name"] == "c"
    assert eg.policy_for(policies, gateway, listener, ("n", "r"), None)["metadata"]["name"] == "b"
    assert eg.policy_for(policies[:1], gateway, listener, ("n", "other"), None)["metadata"]["name"] == "a"
