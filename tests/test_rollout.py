"""Rollout controls in a real Envoy: rules (the seed's header/path routing),
hashOn, the ramp, evict, generations and signed cookies."""

import pytest

from helpers import assert_vm_healthy, requests_counted
from stickysplit import envoy
from stickysplit.tools import walkthrough
from stickysplit.http import Client
from stickysplit.stats import ALPHA, split_verdict
from stickysplit.testbed import COOKIE

KEY = "k9-2f8a1c0e7b3d4e5f60718293a4b5c6d7"


def plugin(base, **changes):
    p = envoy.plugin_config(base)
    weights = changes.pop("weights", None)
    if weights:
        for pool, w in zip(p["pools"], weights):
            pool["weight"] = w
    p.update(changes)
    return p


def gateway(workdir, base, vm_env=None, **changes):
    return envoy.Envoy(base=base, plugin=plugin(base, **changes), workdir=workdir, vm_env=vm_env)


def value_of(resp):
    """The affinity cookie value in a response (None if none was set)."""
    return resp.issued(COOKIE)


SEED_RULES = [
    {"match": {"headers": [{"name": "user-group", "exact": "beta-testers"}]}, "pool": "pool2"},
    {"match": {"headers": [{"name": "end-user", "exact": "jason"}]}, "pool": "pool2"},
    {"match": {"headers": [{"name": "x-region", "regex": "us-.*"}]}, "pool": "pool2"},
    {"match": {"headers": [{"name": "user-agent", "prefix": "Mobile"}]}, "pool": "pool2"},
    {"match": {"path": {"prefix": "/v2/"}}, "pool": "pool2"},
    {"match": {"query": [{"name": "pool", "exact": "canary"}]}, "pool": "pool2", "sticky": True},
]


@pytest.mark.parametrize(
    "path,headers,pool,cookie",
    [
        ("/", [("user-group", "beta-testers")], "pool2", False),
        ("/", [("user-group", "alpha-testers")], "pool1", True),
        ("/", [("end-user", "jason")], "pool2", False),
        ("/", [("End-User", "jason")], "pool2", False),
        ("/", [("end-user", "jason2")], "pool1", True),
        ("/", [("x-region", "us-west-2")], "pool2", False),
        ("/", [("x-region", "eu-west-1")], "pool1", True),
        ("/", [("x-region", "eu-us-1")], "pool1", True),
        ("/", [("user-agent", "Mobile Safari/604.1")], "pool2", False),
        ("/", [("user-agent", "Mozilla/5.0 Mobile")], "pool1", True),
        ("/v2/items", [], "pool2", False),
        ("/v2", [], "pool1", True),
        ("/v1/items?next=/v2/", [], "pool1", True),
        ("/shop?pool=canary", [], "pool2", True),
        # a rule beats the affinity cookie
        ("/", [("user-group", "beta-testers"), ("Cookie", f"{COOKIE}=pool1")], "pool2", False),
    ],
)
def test_seed_rules_route_in_envoy(rules_gw, path, headers, pool, cookie):
    r = Client(rules_gw.gateway).get(path, headers)
    assert (r.status, r.served_by) == (200, pool), r.body
    assert (value_of(r) is not None) == cookie
    if cookie:
        assert value_of(r).split(".")[0] == pool


def test_sticky_rule_pins_the_user(rules_gw):
    with Client(rules_gw.gateway) as c:
        v = value_of(c.get("/?pool=canary"))
        assert v.startswith("pool2.")
        for _ in range(20):
            r = c.get("/", [("Cookie", f"{COOKIE}={v}")])
            assert (r.served_by, value_of(r)) == ("pool2", None)
        # the pool only rules reach: a client's own claim is forged
        r = c.get("/", [("Cookie", f"{COOKIE}=pool2")])
        assert (r.served_by, value_of(r).split(".")[0]) == ("pool1", "pool1")


@pytest.fixture(scope="module")
def rules_gw(workdir, base_config):
    # pool2 has weight 0 and a sticky rule: that needs signing
    cookie = dict(envoy.plugin_config(base_config)["cookie"], signingKeyEnv="STICKY_SPLIT_KEY")
    with gateway(workdir, base_config, vm_env={"STICKY_SPLIT_KEY": KEY}, weights=[100, 0], rules=SEED_RULES, cookie=cookie) as g:
        yield g
        assert_vm_healthy(g)


DARK = [{"match": {"headers": [{"name": "x-tester", "exact": "yes"}]}, "pool": "pool2"}]


def test_a_dark_launch_is_closed_to_unsigned_claims(workdir, base_config):
    """pool2 has weight 0 and only a rule sends testers there; values are
    unsigned. Writing its name into the cookie or the session header does
    not get a client in: it is picked anew and given a pool1 value."""
    with gateway(workdir, base_config, weights=[1, 0], rules=DARK, sessionHeader="x-ss",
                 debugHeader="x-debug") as g, Client(g.gateway) as c:
        r = c.get("/", [("x-tester", "yes")])
        assert (r.served_by, r.header("x-debug"), value_of(r)) == ("pool2", "pool=pool2; reason=rule", None)
        for claim in ([("Cookie", f"{COOKIE}=pool2")], [("x-ss", "pool2")],
                      [("Cookie", f"a=1; {COOKIE}=pool2; b=2")]):
            r = c.get("/", claim)
            assert (r.served_by, r.header("x-debug"), value_of(r)) == \
                ("pool1", "pool=pool1; reason=reassigned", "pool1"), claim
        assert_vm_healthy(g)


def test_a_sticky_rule_to_a_dark_launch_without_signing_is_refused(workdir, base_config):
    rules = [dict(DARK[0], sticky=True)]
    code, out = envoy.validate(envoy.render(base_config, plugin=plugin(base_config, weights=[1, 0], rules=rules)),
                               workdir)
    refused = [line for line in out.splitlines() if "configuration refused:" in line]
    assert code != 0 and refused, out[-3000:]
    assert 'rules[0].sticky: pins users to pool "pool2", which has weight 0' in refused[0], refused[0]


def test_hash_on_header_splits_by_weight_and_replicas_agree(workdir, base_config):
    """Two gateway replicas, 2,500 user keys: the split fits 80:20 and both
    replicas put every key in the same pool; no cookie is needed or set."""
    keys = [f"user-{i:05d}@example.com" for i in range(2500)]
    placed = []
    for _ in range(2):
        with gateway(workdir, base_config, hashOn={"header": "x-user-id"}) as g, Client(g.gateway) as c:
            run = []
            for k in keys:
                r = c.get("/", [("x-user-id", k)])
                assert r.status == 200 and value_of(r) is None
                run.append(r.served_by)
            placed.append(run)
            assert_vm_healthy(g)
    assert placed[0] == placed[1]
    ok, stat, df, p = split_verdict([placed[0].count("pool1"), placed[0].count("pool2")], [80, 20], ALPHA)
    assert ok, f"chi2={stat:.2f} p={p:.3g}"


def test_canary_ramp_moves_the_needed_share_and_rolls_back(workdir, base_config):
    rows = walkthrough.walk((10, 20, 50, 100, 0), users=3000, workdir=workdir, base=base_config)
    for r in rows:
        assert r["share_ok"], r
    previous = 10
    for r in rows[1:]:
        w = r["canary_weight"]
        if w >= previous:
            assert r["moved_to_stable"] == 0, f"canary users moved back during the ramp: {r}"
            # among stable users, (new - old) / (100 - old) move to the canary
            want = [100 - w, w - previous]
            got = [r["stable_before"] - r["moved_to_canary"], r["moved_to_canary"]]
            ok, stat, _, p = split_verdict(got, want, ALPHA)
            assert ok, f"at {w}%: moved {got} vs {want}: p={p:.3g}"
        previous = w
    last = rows[-1]
    assert last["on_canary"] == 0 and last["moved_to_stable"] == last["canary_before"] == 3000


def test_evicted_pool_users_are_moved_with_a_new_cookie(workdir, base_config):
    p = plugin(base_config, weights=[0, 100])
    p["pools"][0]["evict"] = True
    with envoy.Envoy(base=base_config, plugin=p, workdir=workdir) as g, Client(g.gateway) as c:
        for _ in range(50):
            r = c.get("/", [("Cookie", f"{COOKIE}=pool1")])
            assert (r.served_by, value_of(r)) == ("pool2", "pool2")
            r = c.get("/", [("Cookie", f"{COOKIE}=pool2")])
            assert (r.served_by, value_of(r)) == ("pool2", None)
        assert_vm_healthy(g)


def test_new_generation_reassigns_once(workdir, base_config):
    with gateway(workdir, base_config, generation="g1") as g, Client(g.gateway) as c:
        old = [value_of(c.get("/")) for _ in range(200)]
    assert all(v.startswith("g1.pool") for v in old)
    with gateway(workdir, base_config, generation="g2") as g, Client(g.gateway) as c:
        for v in old:
            r = c.get("/", [("Cookie", f"{COOKIE}={v}")])
            new = value_of(r)
            assert new == f"g2.{r.served_by}", "stale generation is reassigned, cookie rewritten"
            again = c.get("/", [("Cookie", f"{COOKIE}={new}")])
            assert (again.served_by, value_of(again)) == (r.served_by, None)
        # a plain pool cookie from before generations is stale too
        assert value_of(c.get("/", [("Cookie", f"{COOKIE}=pool1")])).startswith("g2.")


def test_signed_cookies_in_envoy(workdir, base_config):
    cookie = dict(envoy.plugin_config(base_config)["cookie"], signingKeyEnv="STICKY_SPLIT_KEY")
    with gateway(workdir, base_config, vm_env={"STICKY_SPLIT_KEY": KEY}, cookie=cookie) as g:
        with Client(g.gateway) as c:
            r = c.get("/")
            genuine, pool = value_of(r), r.served_by
            body, mac = genuine.rsplit(".", 1)
            assert body == pool and len(mac) == 22
            for _ in range(20):
                r = c.get("/", [("Cookie", f"a=1; {COOKIE}={genuine}")])
                assert (r.served_by, value_of(r)) == (pool, None)
            other = "pool2" if pool == "pool1" else "pool1"
            for forged in [other, f"{other}.{mac}", f"{pool}.{'A' * 22}", f"{pool}.", ""]:
                r = c.get("/", [("Cookie", f"{COOKIE}={forged}")])
                issued = value_of(r)
                assert issued is not None and issued.rsplit(".", 1)[0] == r.served_by, forged
                assert issued != forged
        log = g.log_text()
        assert KEY not in log, "the signing key must never be logged"
        assert_vm_healthy(g)


def test_signing_key_env_without_a_value_is_refused(workdir, base_config):
    cookie = dict(envoy.plugin_config(base_config)["cookie"], signingKeyEnv="STICKY_SPLIT_KEY")
    config = envoy.render(base_config, plugin=plugin(base_config, cookie=cookie))
    code, out = envoy.validate(config, workdir)
    assert code != 0
    assert "configuration refused: cookie.signingKeyEnv: environment variable STICKY_SPLIT_KEY is not set" in out


def test_rotating_the_signing_key_moves_nobody(workdir, base_config):
    """200 users signed with key A; with B current and A previous each keeps
    the pool and is issued one cookie under B, then is pinned with no
    Set-Cookie; a value of an unknown key C is forged; once A is dropped, A's
    values are forged."""
    keys = {"KEY_A": "key A: signed the first users...", "KEY_B": "key B: the new current key......",
            "KEY_C": "key C: configured nowhere........"}
    base_cookie = envoy.plugin_config(base_config)["cookie"]

    def signed(current, previous=()):
        cookie = dict(base_cookie, signingKeyEnv=current, previousSigningKeyEnvs=list(previous))
        return gateway(workdir, base_config, vm_env=keys, cookie=cookie, weights=[50, 50])

    with signed("KEY_A") as g:
        users = []
        for _ in range(200):
            r = Client(g.gateway, keepalive=False).get("/")
            users.append((r.served_by, value_of(r)))
    with signed("KEY_C") as g:
        c_values = [value_of(Client(g.gateway, keepalive=False).get("/")) for _ in range(20)]
    with signed("KEY_B", ["KEY_A"]) as g, Client(g.gateway) as c:
        resigned = []
        for pool, value in users:
            r = c.get("/", [("Cookie", f"a=1; {COOKIE}={value}")])
            new = value_of(r)
            assert r.served_by == pool, "a user changed pool"
            assert new is not None and new != value and new.rsplit(".", 1)[0] == value.rsplit(".", 1)[0]
            resigned.append((pool, new))
        for pool, new in resigned:
            r = c.get("/", [("Cookie", f"{COOKIE}={new}")])
            assert (r.served_by, value_of(r)) == (pool, None)
        for value in c_values:
            r = c.get("/", [("Cookie", f"{COOKIE}={value}")])
            assert value_of(r) is not None and value_of(r) != value
        counted = requests_counted(g, 2 * len(users) + len(c_values))
        assert sum(n for (reason, _), n in counted.items() if reason == "resigned") == len(users)
        assert sum(n for (reason, _), n in counted.items() if reason == "forged") == len(c_values)
        assert_vm_healthy(g)
    with signed("KEY_B") as g, Client(g.gateway) as c:
        for pool, value in users[:50]:
            assert value_of(c.get("/", [("Cookie", f"{COOKIE}={value}")])) is not None, "A's value was accepted"
        counted = requests_counted(g, 50)
        assert sum(n for (reason, _), n in counted.items() if reason == "forged") == 50
