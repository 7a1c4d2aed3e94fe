"""The docker-compose stack users run (envoy-test/docker-compose.yaml), with
the Envoy image scripts/docker-images builds without a registry; reached only
through the ports it publishes on 127.0.0.1. Run by scripts/test when a
Docker daemon answers (STICKY_SPLIT_DOCKER=1, ENVOY_IMAGE set)."""

import io
import os
import tarfile

import pytest

from stickysplit import compose, envoy
from stickysplit.http import Client
from stickysplit.metrics import until
from stickysplit.proc import run
from stickysplit.stats import ALPHA, split_verdict
from stickysplit.testbed import COOKIE, DEBUG_HEADER as DEBUG


@pytest.fixture(scope="module")
def stack():
    image = os.environ.get("ENVOY_IMAGE")
    if not image:
        pytest.fail("ENVOY_IMAGE is not set: run through scripts/test (it runs scripts/docker-images)")
    with compose.Stack(image) as s:
        yield s


def new_user(s):
    return Client(s.gateway_port, keepalive=False).get("/")


def requests_by_reason(stack):
    """{reason: n} of sticky_split_requests_total, summed over pools."""
    out = {}
    for (reason, _), n in stack.metric("sticky_split_requests_total", "reason", "pool").items():
        out[reason] = out.get(reason, 0) + n
    return out


def test_split_stickiness_and_counters(stack):
    # the stack serves the other tests too (and the readiness probe): count
    # what this one sends, from counts that hold all that came before
    stack.wait_all_counted()
    before = requests_by_reason(stack)
    counts, cookies = {"pool1": 0, "pool2": 0}, []
    for _ in range(2000):
        r = new_user(stack)
        assert r.status == 200 and r.body.decode().strip() == r.served_by
        counts[r.served_by] += 1
        value = r.issued(COOKIE)
        assert value == r.served_by
        if len(cookies) < 50:
            cookies.append(value)
    ok, stat, df, p = split_verdict([counts["pool1"], counts["pool2"]], [80, 20], ALPHA)
    assert ok, f"{counts}: chi-square {stat:.2f}, df {df}, p {p:.2e}"
    with Client(stack.gateway_port) as c:
        for value in cookies:
            for header in (f"{COOKIE}={value}", f"_ga=GA1.2.3; {COOKIE}={value}; theme=dark"):
                r = c.get("/", [("Cookie", header)])
                assert (r.served_by, r.issued(COOKIE)) == (value, None)

    def sent():
        now = requests_by_reason(stack)
        return {reason: now[reason] - before.get(reason, 0) for reason in now if now[reason] != before.get(reason, 0)}

    got = until(sent, lambda got: sum(got.values()) >= 2000 + 100, what="requests counted since the test began")
    assert got.get("new") == 2000
    assert got.get("sticky") == 100


def test_pinned_users_of_a_stopped_pool_fail_over(stack):
    stack.compose("stop", "pool2")
    try:
        failed = []
        for user in range(20):
            cookie, failures = f"{COOKIE}=pool2", 0
            for attempt in range(3):
                r = Client(stack.gateway_port, keepalive=False).get("/", [("Cookie", f"u={user}; {cookie}")])
                if r.status != 200:
                    failures += 1
                    assert r.status == 503
                    assert r.header(DEBUG) == "pool=pool2; reason=sticky; failover=pool1"
                else:
                    assert r.served_by == "pool1"
                if r.issued(COOKIE):
                    assert (attempt, r.issued(COOKIE)) == (0, "pool1")
                    cookie = f"{COOKIE}=pool1"
            failed.append(failures)
        assert max(failed) <= 1, failed
        assert min(failed) == 0, "ejection moves later users on their request"
    finally:
        stack.compose("start", "pool2")
        # a new gateway, which has not ejected pool2, for the tests after this one
        stack.compose("restart", "gateway")
        stack.wait_ready()


def test_cookies_survive_a_gateway_restart(stack):
    values = [new_user(stack).issued(COOKIE) for _ in range(40)]
    stack.compose("restart", "gateway")
    stack.wait_ready()
    with Client(stack.gateway_port) as c:
        for value in values:
            r = c.get("/", [("Cookie", f"{COOKIE}={value}")])
            assert (r.status, r.served_by, r.issued(COOKIE)) == (200, value, None)


def test_the_plugin_image_holds_the_module():
    version = next(line.split('"')[1] for line in (envoy.REPO / "filter/Cargo.toml").read_text().splitlines()
                   if line.startswith("version"))
    cid = run(["docker", "create", f"sticky-split/plugin:{version}", "none"], check=True).stdout.strip()
    try:
        tar = run(["docker", "cp", f"{cid}:/plugin.wasm", "-"], text=False, check=True).stdout
    finally:
        run(["docker", "rm", cid])
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        names = t.getnames()
        data = t.extractfile("plugin.wasm").read()
    assert names == ["plugin.wasm"]
    assert data == envoy.WASM.read_bytes()
