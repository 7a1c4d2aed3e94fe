"""Hostile and odd requests through the real Envoy: each gets a response from
the right pool (or Envoy's own refusal), the VM never fails, and the next
request is unaffected."""

import copy
import socket

import pytest

from helpers import assert_vm_healthy, requests_counted, vm_stats
from stickysplit import envoy, testbed
from stickysplit.http import Client, h2c_get
from stickysplit.testbed import COOKIE


@pytest.fixture(scope="module")
def gw(workdir, base_config):
    with envoy.Envoy(base=base_config, workdir=workdir) as g:
        g.vms_at_start = vm_stats(g)
        yield g
        assert_vm_healthy(g)


def check_next_request(gw):
    """The gateway still routes a plain pinned request normally, and no VM was
    created since start-up (a trapped VM is replaced by a new one) nor is gone:
    checked after each case, so it holds whichever cases ran before."""
    r = Client(gw.gateway).get("/", [("Cookie", f"{COOKIE}=pool2")])
    assert (r.status, r.served_by, r.cookies_set(COOKIE)) == (200, "pool2", [])
    now = vm_stats(gw)
    assert now["created"] == gw.vms_at_start["created"] > 0, (gw.vms_at_start, now)
    assert now["active"] == gw.vms_at_start["active"]
    assert_vm_healthy(gw)


def issued(r):
    value = r.issued(COOKIE)
    assert value is not None, r.all("set-cookie")
    return value


CASES = [
    # (id, Cookie header values, expected pool or None for "any, newly assigned")
    ("not utf-8 everywhere", [b"\xff\xfe=\xfd; " + COOKIE.encode() + b"=pool2; \xc0\xaf=\x80"], "pool2"),
    ("500 cookies, ours last", ["; ".join(f"c{i}=v{i}" for i in range(500)) + f"; {COOKIE}=pool2"], "pool2"),
    ("500 cookies, ours first", [f"{COOKIE}=pool2; " + "; ".join(f"c{i}=v{i}" for i in range(500))], "pool2"),
    ("repeated: invalid, valid, invalid", [f"{COOKIE}=nope; {COOKIE}=pool2; {COOKIE}=pool1x"], "pool2"),
    ("repeated: all invalid", [f"{COOKIE}=a; {COOKIE}=; {COOKIE}=\"\""], None),
    ("quoted", [f'{COOKIE}="pool2"'], "pool2"),
    ("empty value", [f"{COOKIE}="], None),
    ("whitespace padded", [f"  {COOKIE}  =  pool2  ;x=1"], "pool2"),
    ("tab padded", [f"\t{COOKIE}=pool2\t"], "pool2"),
    ("case-variant name is another cookie", [f"{COOKIE.upper()}=pool2"], None),
    ("empty cookie header", [""], None),
    ("only separators", [";;; ; ;"], None),
    ("name without value", [f"{COOKIE}"], None),
    ("valid in the second of three headers", ["a=1", f"{COOKIE}=pool2", f"{COOKIE}=pool1"], "pool2"),
]


@pytest.mark.parametrize("cookies,pool", [(c, p) for _, c, p in CASES], ids=[i for i, _, _ in CASES])
def test_odd_cookies_route_sensibly(gw, cookies, pool):
    r = Client(gw.gateway).get("/", [("Cookie", c) for c in cookies])
    assert r.status == 200, r.body
    if pool:
        assert (r.served_by, r.cookies_set(COOKIE)) == (pool, [])
    else:
        assert issued(r) == r.served_by
    check_next_request(gw)


def test_large_cookie_header_is_routed_up_to_envoys_limit(gw):
    # Envoy's default max_request_headers_kb is 60: just under it is routed...
    big = "; ".join(f"k{i}={'x' * 90}" for i in range(550)) + f"; {COOKIE}=pool2"
    assert 50_000 < len(big) < 58_000
    r = Client(gw.gateway).get("/", [("Cookie", big)])
    assert (r.status, r.served_by) == (200, "pool2")
    check_next_request(gw)


def test_cookie_header_over_envoys_limit_gets_431(gw):
    # ... and over it Envoy itself refuses, before the filter runs
    big = f"{COOKIE}=pool2; " + "; ".join(f"k{i}={'x' * 90}" for i in range(700))
    assert len(big) > 61 * 1024
    r = Client(gw.gateway).get("/", [("Cookie", big)])
    assert r.status == 431
    check_next_request(gw)


def test_forged_routing_headers_repeated(gw):
    forged = [("x-sticky-split-pool", v) for v in ("pool1", "pool2", "", "pool1,pool2", "\xff")]
    forged += [("x-sticky-split-cluster", v) for v in ("pool1", "evil-cluster", "pool2-cluster")]
    with Client(gw.gateway) as c:
        for pool in ("pool1", "pool2"):
            r = c.get("/", [("Cookie", f"{COOKIE}={pool}")] + forged)
            assert (r.status, r.served_by, r.header("x-seen-pool")) == (200, pool, pool)
            want_cluster = "pool1" if pool == "pool1" else "pool2-cluster"
            assert r.header("x-seen-cluster") == want_cluster
            r = c.get("/via-cluster-header/", [("Cookie", f"{COOKIE}={pool}")] + forged)
            assert (r.status, r.served_by) == (200, pool)
    check_next_request(gw)


@pytest.mark.parametrize(
    "fields,pool",
    [
        ([("cookie", "a=1"), ("cookie", f"{COOKIE}=pool2"), ("cookie", "b=2")], "pool2"),
        ([("cookie", f"{COOKIE}=pool2"), ("cookie", f"{COOKIE}=pool1")], "pool2"),
        ([("cookie", "a=1"), ("cookie", f"{COOKIE}=bogus")], None),
        ([("cookie", b"\xff\xfe=1"), ("cookie", f"{COOKIE}=pool2".encode())], "pool2"),
    ],
    ids=["ours in the middle crumb", "first valid crumb wins", "bogus crumb", "non-utf-8 crumb"],
)
def test_http2_cookie_crumbs(gw, fields, pool):
    r = h2c_get(gw.gateway, "/", fields)
    assert r.status == 200, r.body
    if pool:
        assert (r.served_by, r.cookies_set(COOKIE)) == (pool, [])
    else:
        assert issued(r) == r.served_by
    # and a forged header over h2 is replaced too
    r = h2c_get(gw.gateway, "/", [("x-sticky-split-pool", "pool1"), ("cookie", f"{COOKIE}=pool2")])
    assert (r.status, r.served_by, r.header("x-seen-pool")) == (200, "pool2", "pool2")
    check_next_request(gw)


def raw_http10(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_http10_requests(gw):
    resp = raw_http10(gw.gateway, f"GET / HTTP/1.0\r\nHost: x\r\nCookie: {COOKIE}=pool2\r\n\r\n".encode())
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    assert body == b"pool2\n"
    resp = raw_http10(gw.gateway, b"GET / HTTP/1.0\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    assert f"set-cookie: {COOKIE}=".encode() in head.lower()
    check_next_request(gw)


def test_no_pool_no_pin(workdir, base_config):
    """Replies Envoy makes without asking any pool (a redirect route, a
    CONNECT it rejects) carry no affinity cookie or session header and count
    under no pool; a direct_response 2xx is taken for a pool's answer (the
    documented exception) unless the filter is disabled on its route; a new
    user answered by a pool gets both."""
    config = copy.deepcopy(base_config)
    disabled = {"sticky-split": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                                 "disabled": True}}
    testbed.routes(config)[:0] = [
        {"match": {"prefix": "/old"}, "redirect": {"path_redirect": "/new"}},
        {"match": {"prefix": "/healthz"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}},
        {"match": {"prefix": "/ready"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
         "typed_per_filter_config": disabled},
    ]
    plugin = dict(envoy.plugin_config(config), sessionHeader="x-ss", debugHeader="x-debug")
    with envoy.Envoy(base=config, plugin=plugin, workdir=workdir) as g, Client(g.gateway) as c:
        for _ in range(3):
            r = c.get("/old")
            assert (r.status, r.cookies_set(COOKIE), r.header("x-ss")) == (301, [], None)
            assert r.header("x-debug").endswith("; answered-by=envoy"), r.header("x-debug")
            r = c.get("/ready")
            assert (r.status, r.cookies_set(COOKIE), r.header("x-ss"), r.header("x-debug")) == (200, [], None, None)
        connect = raw_http10(g.gateway, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        head = connect.partition(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 404"), head
        assert b"set-cookie" not in head and b"x-ss:" not in head, head
        # none of those counted; the one a pool answered is
        r = c.get("/")
        assert r.status == 200 and r.issued(COOKIE) is not None and r.header("x-ss") is not None
        counted = {k: n for k, n in requests_counted(g, total=1).items() if n}
        assert counted == {("new", r.served_by): 1}, counted
        # the exception: a direct_response 200 looks like a pool's answer
        r = c.get("/healthz")
        assert r.status == 200 and r.issued(COOKIE) is not None
        assert_vm_healthy(g)
