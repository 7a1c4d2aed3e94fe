"""gRPC through the filter in a real Envoy, with a real gRPC client (grpcio)
and h2c backends whose method picks the outcome: a dead pool fails over
with at most one failed call per user and is ejected; outcomes are counted by
grpc-status (in the trailers, trailers-only, or none for a reset stream)."""

import grpc
import pytest

from helpers import assert_vm_healthy, requests_counted
from stickysplit import envoy
from stickysplit.grpc_backend import SERVICE, GrpcBackend
from stickysplit.metrics import total_at_least, until
from stickysplit.testbed import COOKIE, DEBUG_HEADER as DEBUG

EJECT_AFTER = 3


def grpc_cluster(name, port):
    """A cluster of one h2c endpoint on 127.0.0.1:`port`."""
    cluster = envoy.static_cluster(name, port)
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}}
    return cluster


def grpc_gateway(workdir, base, ports, **plugin_fields):
    """The test gateway (one worker, so ejection counts are exact) with pool1
    and pool2 on the gRPC backends at `ports` and the debug header on."""
    plugin = envoy.plugin_config(base)
    plugin.update({"pools": [{"name": "pool1", "weight": 50}, {"name": "pool2", "weight": 50, "cluster": "pool2-cluster"}],
                   "debugHeader": DEBUG, **plugin_fields})

    def edit(config):
        res = config["static_resources"]
        res["clusters"] = [grpc_cluster("pool1", ports["pool1"]), grpc_cluster("pool2-cluster", ports["pool2"])]

    return envoy.Envoy(base=base, plugin=plugin, workdir=workdir, edit=edit, concurrency=1)


class Caller:
    """Unary calls of the test service over one channel (one HTTP/2
    connection), with the client's retries off so each call is one request."""

    def __init__(self, port):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)])
        self.sent = 0

    def call(self, method, cookie=None):
        """(gRPC status code, response metadata as {name: [values]}): the
        headers and trailers together (a trailers-only answer has only the latter)."""
        self.sent += 1
        metadata = [("cookie", f"{COOKIE}={cookie}")] if cookie else []
        stub = self.channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)
        try:
            _, call = stub.with_call(b"ping", metadata=metadata, timeout=10)
            code, pairs = grpc.StatusCode.OK, [*call.initial_metadata(), *call.trailing_metadata()]
        except grpc.RpcError as e:
            code, pairs = e.code(), [*(e.initial_metadata() or ()), *(e.trailing_metadata() or ())]
        out = {}
        for k, v in pairs:
            out.setdefault(k, []).append(v)
        return code, out

    def close(self):
        self.channel.close()


def issued(metadata):
    """The pool the response's affinity Set-Cookie names, if it sets one."""
    values = [v.split(";", 1)[0].split("=", 1)[1] for v in metadata.get("set-cookie", []) if v.startswith(f"{COOKIE}=")]
    assert len(values) <= 1, values
    return values[0] if values else None


def responses_counted(gw, total):
    return until(lambda: gw.metric("sticky_split_responses_total", "class", "pool"), total_at_least(total),
                 what="sticky_split_responses_total")


@pytest.fixture
def backends():
    with GrpcBackend("pool1") as p1, GrpcBackend("pool2") as p2:
        yield {"pool1": p1, "pool2": p2}


def test_a_dead_grpc_pool_fails_over_once_per_user_and_is_ejected(workdir, base_config, backends):
    ports = {name: b.port for name, b in backends.items()}
    # pool2 is gone before Envoy ever connects to it: connection refused (UF)
    backends["pool2"].stop()
    with grpc_gateway(workdir, base_config, ports,
                      failover={"ejectAfter": EJECT_AFTER, "ejectSeconds": 60}) as gw:
        caller = Caller(gw.gateway)
        try:
            failed_per_user = []
            for _user in range(20):
                cookie, failed = "pool2", 0
                for attempt in range(3):
                    code, md = caller.call("Ok", cookie)
                    if code != grpc.StatusCode.OK:
                        # Envoy's own reply: HTTP 200, grpc-status 14, trailers-only
                        assert code == grpc.StatusCode.UNAVAILABLE, code
                        failed += 1
                        assert md[DEBUG] == ["pool=pool2; reason=sticky; failover=pool1"], md
                    else:
                        assert md["x-served-by"] == ["pool1"], md
                    if issued(md) is not None:
                        assert (issued(md), attempt) == ("pool1", 0), "the cookie is rewritten once, on that call"
                        cookie = issued(md)
                failed_per_user.append(failed)
            assert max(failed_per_user) == 1
            # ejected after EJECT_AFTER failed calls: later users move on their call
            assert sum(failed_per_user) == EJECT_AFTER, failed_per_user
            # new gRPC users avoid the ejected pool
            for _ in range(50):
                code, md = caller.call("Ok")
                assert (code, md["x-served-by"], issued(md)) == (grpc.StatusCode.OK, ["pool1"], "pool1")
            responses = responses_counted(gw, caller.sent)
            assert responses[("gateway", "pool2")] == EJECT_AFTER
            assert responses[("2xx", "pool1")] == caller.sent - EJECT_AFTER
            assert gw.metric("sticky_split_ejections_total", "pool")["pool2"] == 1
            assert gw.metric("sticky_split_failovers_total", "pool")["pool2"] == EJECT_AFTER
        finally:
            caller.close()
        assert_vm_healthy(gw)


def test_grpc_outcomes_are_counted_by_grpc_status(workdir, base_config, backends):
    ports = {name: b.port for name, b in backends.items()}
    methods = ["Ok", "Unavailable", "NotFound", "Reset"]
    rounds = 10
    with grpc_gateway(workdir, base_config, ports) as gw:
        caller = Caller(gw.gateway)
        try:
            codes = {}
            for _ in range(rounds):
                for method in methods:
                    code, md = caller.call(method, "pool1")
                    codes.setdefault(method, set()).add(code)
                    # a reset, an application's error: nobody moves
                    assert issued(md) is None, (method, md)
            assert codes["Ok"] == {grpc.StatusCode.OK}
            assert codes["Unavailable"] == {grpc.StatusCode.UNAVAILABLE}
            assert codes["NotFound"] == {grpc.StatusCode.NOT_FOUND}
            assert grpc.StatusCode.OK not in codes["Reset"]
            total = rounds * len(methods)
            assert sum(requests_counted(gw, total).values()) == total
            responses = {k: v for k, v in responses_counted(gw, total).items() if v}
            # OK; UNAVAILABLE in the trailers; trailers-only NOT_FOUND; and a
            # stream reset after its headers, with no status at all: a
            # failure, which Envoy's flags (UR) mark as its own
            assert responses == {("2xx", "pool1"): rounds, ("5xx", "pool1"): rounds, ("4xx", "pool1"): rounds,
                                 ("gateway", "pool1"): rounds}, responses
            # one reset between successes never makes EJECT consecutive failures
            assert gw.metric("sticky_split_ejections_total", "pool")["pool1"] == 0
            assert backends["pool1"].calls == total
        finally:
            caller.close()
        assert_vm_healthy(gw)
