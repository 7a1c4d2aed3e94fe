"""The core issue's behaviour, in a real Envoy: split, stickiness, Set-Cookie,
forged headers, reassignment, draining, odd bytes, routing re-evaluation."""

import http.client
import ssl

import pytest

from helpers import assert_vm_healthy
from stickysplit import envoy, testbed
from stickysplit.http import Client, set_cookie_pair
from stickysplit.proc import run
from stickysplit.stats import ALPHA, split_verdict
from stickysplit.testbed import COOKIE

ATTRS = "; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax"


@pytest.fixture(scope="module")
def gw(workdir, base_config):
    with envoy.Envoy(base=base_config, workdir=workdir) as g:
        yield g
        assert_vm_healthy(g)


@pytest.fixture(scope="module")
def drained(workdir, base_config):
    plugin = envoy.plugin_config(base_config)
    plugin["pools"][0]["weight"] = 0
    plugin["pools"][1]["weight"] = 100
    with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir) as g:
        yield g
        assert_vm_healthy(g)


def issued_pool(resp):
    """The pool named by the affinity Set-Cookie, checking its exact form."""
    pool = resp.issued(COOKIE)
    assert pool is not None, resp.all("set-cookie")
    assert resp.cookies_set(COOKIE) == [f"{COOKIE}={pool}{ATTRS}"]
    return pool


def test_new_users_split_by_weight_and_get_their_pool_in_a_cookie(gw):
    n = 4000
    counts = {"pool1": 0, "pool2": 0}
    with Client(gw.gateway) as c:
        for _ in range(n):
            r = c.get("/")
            assert r.status == 200, r.body
            counts[r.served_by] += 1
            # the cookie pins the user to the pool that served them
            assert issued_pool(r) == r.served_by
            # the application's own cookie is still there, untouched
            assert r.all("set-cookie")[0] == f"app-session={r.served_by}-session; Path=/"
    ok, stat, df, p = split_verdict([counts["pool1"], counts["pool2"]], [80, 20], ALPHA)
    assert ok, f"{counts}: chi2={stat:.2f} df={df} p={p:.3g} < {ALPHA}"


@pytest.mark.parametrize("pool", ["pool1", "pool2"])
@pytest.mark.parametrize(
    "shape",
    [
        "alone",
        "among other cookies",
        "quoted, first of many",
        "two Cookie headers, ours second",
        "two Cookie headers, ours first",
    ],
)
def test_returning_user_stays_on_their_pool(gw, pool, shape):
    headers = {
        "alone": [("Cookie", f"{COOKIE}={pool}")],
        "among other cookies": [("Cookie", f"_ga=GA1.2.3; {COOKIE}={pool}; theme=dark")],
        "quoted, first of many": [("Cookie", f'{COOKIE}="{pool}";lang=en; sid=abc')],
        "two Cookie headers, ours second": [("Cookie", "_ga=GA1.2.3; theme=dark"), ("Cookie", f"sid=1; {COOKIE}={pool}")],
        "two Cookie headers, ours first": [("Cookie", f"{COOKIE}={pool}"), ("Cookie", "sid=1; theme=dark")],
    }[shape]
    with Client(gw.gateway) as c:
        for _ in range(200):
            r = c.get("/", headers)
            assert (r.status, r.served_by) == (200, pool)
            assert r.cookies_set(COOKIE) == [], "no Set-Cookie for a pinned user"
            assert r.all("set-cookie") == [f"app-session={pool}-session; Path=/"]


def test_a_users_first_cookie_keeps_them_there(gw):
    """The whole loop, as a browser does it: take the cookie, send it back."""
    with Client(gw.gateway) as c:
        for _ in range(50):
            first = c.get("/")
            pool = issued_pool(first)
            for _ in range(5):
                r = c.get("/", [("Cookie", f"app-session=x; {COOKIE}={pool}")])
                assert r.served_by == pool and r.cookies_set(COOKIE) == []


def test_forged_routing_headers_are_replaced(gw):
    forged = [
        ("x-sticky-split-pool", "pool2"),
        ("X-Sticky-Split-Pool", "pool2"),
        ("x-sticky-split-cluster", "pool2-cluster"),
        ("x-sticky-split-cluster", "evil"),
    ]
    with Client(gw.gateway) as c:
        r = c.get("/", [("Cookie", f"{COOKIE}=pool1")] + forged)
        # the backend answers 200 only if the header is exactly its own name
        assert (r.status, r.served_by) == (200, "pool1"), r.body
        assert r.header("x-seen-pool") == "pool1"
        assert r.header("x-seen-cluster") == "pool1"
        # a new user cannot pick a pool with the header either
        seen = set()
        for _ in range(200):
            r = c.get("/", [("x-sticky-split-pool", "pool2")])
            assert r.status == 200
            assert r.header("x-seen-pool") == r.served_by
            seen.add(r.served_by)
        assert "pool1" in seen


def test_cluster_header_routes_to_the_pools_cluster(gw):
    with Client(gw.gateway) as c:
        for pool, cluster in [("pool1", "pool1"), ("pool2", "pool2-cluster")]:
            r = c.get("/via-cluster-header/x", [("Cookie", f"{COOKIE}={pool}")])
            assert (r.status, r.served_by) == (200, pool)
            assert r.header("x-seen-cluster") == cluster


@pytest.mark.parametrize(
    "cookie",
    [
        f"{COOKIE}=pool9",
        f"{COOKIE}=",
        f"{COOKIE}=POOL1",
        f"{COOKIE}=pool1x",
        f"a=1; {COOKIE}=removed-pool; b=2",
    ],
)
def test_unknown_pool_in_cookie_is_reassigned(gw, cookie):
    with Client(gw.gateway) as c:
        for _ in range(20):
            r = c.get("/", [("Cookie", cookie)])
            assert r.status == 200
            assert issued_pool(r) == r.served_by


def test_drained_pool_keeps_pinned_users_and_gets_no_new_ones(drained):
    with Client(drained.gateway) as c:
        for _ in range(300):
            r = c.get("/", [("Cookie", f"{COOKIE}=pool1")])
            assert (r.served_by, r.cookies_set(COOKIE)) == ("pool1", [])
        # 2,000 new users, pool1 has weight 0: any new user there is a failure
        for _ in range(2000):
            r = c.get("/")
            assert r.served_by == "pool2"
            assert issued_pool(r) == "pool2"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\xfd=\x80\x81; " + COOKIE.encode() + b"=pool2",
        COOKIE.encode() + b"=pool2; junk=\xc3\x28\xa0\xa1",
        b"\xe2\x82=1;" + COOKIE.encode() + b"=\"pool2\"",
    ],
)
def test_cookie_bytes_that_are_not_utf8_still_route(gw, raw):
    with Client(gw.gateway) as c:
        r = c.get("/", [("Cookie", raw)])
        assert (r.status, r.served_by) == (200, "pool2")
        assert r.cookies_set(COOKIE) == []
        # our cookie's value itself not UTF-8: a new assignment, still routed
        r = c.get("/", [("Cookie", COOKIE.encode() + b"=\xffpool2")])
        assert r.status == 200
        assert issued_pool(r) == r.served_by
        # and the connection keeps working
        assert c.get("/", [("Cookie", f"{COOKIE}=pool1")]).served_by == "pool1"


def test_secure_attribute_follows_the_config(workdir, base_config):
    plugin = envoy.plugin_config(base_config)
    plugin["cookie"].update({"secure": True, "sameSite": "None", "maxAge": 0, "domain": "example.com", "httpOnly": False})
    with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir) as g:
        r = Client(g.gateway).get("/")
        [cookie] = r.cookies_set(COOKIE)
        assert cookie == f"{COOKIE}={r.served_by}; Path=/; Domain=example.com; Secure; SameSite=None"
        assert_vm_healthy(g)


def make_cert(workdir):
    key, crt = workdir / "tls.key", workdir / "tls.crt"
    if not crt.exists():
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)], timeout=60, check=True)
    return key, crt


def test_secure_auto_marks_the_cookie_secure_over_https_only(workdir, base_config, gw):
    key, crt = make_cert(workdir)

    def tls_gateway(config):
        testbed.listener(config)["filter_chains"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "tls_certificates": [
                        {"certificate_chain": {"filename": str(crt)}, "private_key": {"filename": str(key)}}
                    ]
                },
            },
        }

    with envoy.Envoy(base=base_config, workdir=workdir, edit=tls_gateway) as g:
        ctx = ssl.create_default_context(cafile=str(crt))
        conn = http.client.HTTPSConnection("localhost", g.gateway, context=ctx, timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        cookies = [v for k, v in resp.getheaders() if k.lower() == "set-cookie" and set_cookie_pair(v)[0] == COOKIE]
        conn.close()
        assert resp.status == 200
        assert len(cookies) == 1 and cookies[0].endswith("; HttpOnly; Secure; SameSite=Lax"), cookies
        assert_vm_healthy(g)
    # the same config over plain http: no Secure
    c = Client(gw.gateway)
    assert "Secure" not in c.get("/").cookies_set(COOKIE)[0]
    # TLS terminated in front of Envoy: Envoy takes the scheme from
    # X-Forwarded-Proto when it trusts it (this config does, as Envoy does by
    # default; an edge with use_remote_address: true overwrites it)
    assert "; Secure;" in c.get("/", [("X-Forwarded-Proto", "https")]).cookies_set(COOKIE)[0]


def test_routes_with_and_without_clear_route_cache(workdir, base_config):
    """By default the filter leaves re-routing to Envoy (ABI 0.2.1, see
    test_configs); with "clearRouteCache": true it also calls Envoy's
    clear_route_cache. Both route every pool's users by the header: the test
    gateway's fallback route is a 503, so a stale route would show."""
    for clear in (False, True):
        plugin = dict(envoy.plugin_config(base_config), clearRouteCache=clear)
        with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir) as g, Client(g.gateway) as c:
            for pool in ("pool1", "pool2"):
                for path in ("/", "/via-cluster-header/x"):
                    r = c.get(path, [("Cookie", f"{COOKIE}={pool}")])
                    assert (r.status, r.served_by, r.header("x-seen-pool")) == (200, pool, pool), (clear, path)
            assert_vm_healthy(g)
