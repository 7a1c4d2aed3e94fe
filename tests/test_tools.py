"""The statistics and the split validator used by the demo: they agree with
known values, and they fail when they should."""

import io
import math

import pytest

from stickysplit import envoy
from stickysplit.proc import TimedOut, run
from stickysplit.stats import ALPHA, chi_square, chi_square_sf, split_verdict
from stickysplit.testbed import COOKIE, DEBUG_HEADER
from stickysplit.tools import validate


@pytest.mark.parametrize(
    "x,df,p",
    [(3.841458820694124, 1, 0.05), (5.991464547107979, 2, 0.05), (23.92812, 1, 1e-6), (16.918977604620448, 9, 0.05)],
)
def test_chi_square_survival_matches_tables(x, df, p):
    assert math.isclose(chi_square_sf(x, df), p, rel_tol=1e-4)


def test_run_names_a_command_that_does_not_finish():
    # what every script and test runs through run(): a hang ends with the
    # command and its output so far, and a command that ends is unchanged
    with pytest.raises(TimedOut, match=r"`sh -c 'echo started; sleep 5'` did not finish within 0.3 s(.|\n)*started"):
        run(["sh", "-c", "echo started; sleep 5"], timeout=0.3)
    done = run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_chi_square_statistic():
    assert chi_square([80, 20], [80, 20]) == (0.0, 1)
    stat, df = chi_square([90, 10, 0], [8, 2, 0])
    assert math.isclose(stat, 6.25) and df == 1
    assert split_verdict([99, 1], [1, 0], ALPHA)[0] is False
    # the tests' alpha, and its power: 2,500 users at 80:20 with 2,050 in pool1
    # is 3.75 sigma off, 1.8e-4 two-sided: passes; 2,150 is 8.75 sigma off: fails
    assert split_verdict([2050, 450], [80, 20], ALPHA)[0] is True
    assert split_verdict([2150, 350], [80, 20], ALPHA)[0] is False


@pytest.fixture(scope="module")
def gw(workdir, base_config):
    with envoy.Envoy(base=base_config, workdir=workdir) as g:
        yield g


def test_validator_reads_the_debug_header(workdir, base_config):
    plugin = envoy.plugin_config(base_config)
    plugin["debugHeader"] = DEBUG_HEADER
    with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir) as g:
        out = io.StringIO()
        url = f"http://127.0.0.1:{g.gateway}/"
        assert validate.run(url, {"pool1": 80, "pool2": 20}, 2500, COOKIE, ALPHA, 20, 3,
                            DEBUG_HEADER, out), out.getvalue()


def test_validator_passes_the_true_weights_and_fails_wrong_ones(gw):
    url = f"http://127.0.0.1:{gw.gateway}/"
    out = io.StringIO()
    assert validate.run(url, {"pool1": 80, "pool2": 20}, 2500, COOKIE, ALPHA, 20, 3, "x-served-by", out)
    assert "PASS" in out.getvalue()
    out = io.StringIO()
    assert not validate.run(url, {"pool1": 50, "pool2": 50}, 2500, COOKIE, ALPHA, 20, 3, "", out)
    assert "FAIL" in out.getvalue()
    # the wrong cookie name: no Set-Cookie found, which is a failure too
    assert not validate.run(url, {"pool1": 80, "pool2": 20}, 50, "other", ALPHA, 5, 2, "", io.StringIO())


TRY_PAIRS = {
    "kubernetes": ["kubernetes/50-wasmplugin.yaml", "kubernetes/60-virtualservice.yaml"],
    "vm": ["vm/40-wasmplugin.yaml", "vm/50-virtualservice.yaml"],
    "gateway-api": ["gateway-api/50-wasmplugin.yaml", "gateway-api/60-httproute.yaml"],
    "trafficextension": ["gateway-api/trafficextension/50-wasmplugin.yaml", "gateway-api/60-httproute.yaml"],
    "envoy-gateway": ["envoy-gateway/50-envoyextensionpolicy.yaml", "envoy-gateway/60-httproute.yaml"],
    "envoy-gateway/gateway-target": ["envoy-gateway/gateway-target/50-envoyextensionpolicy.yaml",
                                     "envoy-gateway/60-httproute.yaml"],
}


@pytest.mark.parametrize("name", sorted(TRY_PAIRS))
def test_try_wasmplugin_passes_on_the_shipped_manifests(name, capsys):
    from stickysplit.tools import try_wasmplugin

    files = [str(envoy.REPO / "wasmplugin" / f) for f in TRY_PAIRS[name]]
    assert try_wasmplugin.main(["-n", "300", *files]) == 0
    out = capsys.readouterr().out
    assert "PASS: " in out and "chi-square" in out


def test_try_wasmplugin_names_the_pool_when_manifests_disagree(tmp_path, capsys):
    import yaml

    from stickysplit.tools import try_wasmplugin

    vs = yaml.safe_load((envoy.REPO / "wasmplugin/kubernetes/60-virtualservice.yaml").read_text())
    vs["spec"]["http"][1]["match"][0]["headers"]["x-sticky-split-pool"]["exact"] = "pool-2"
    path = tmp_path / "vs.yaml"
    path.write_text(yaml.safe_dump(vs))
    code = try_wasmplugin.main([str(envoy.REPO / "wasmplugin/kubernetes/50-wasmplugin.yaml"), str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "pool 'pool2' of WasmPlugin sticky-split has no route on x-sticky-split-pool" in err
    assert "routes x-sticky-split-pool='pool-2', which is not a pool" in err


def test_try_wasmplugin_delivers_an_envoy_extension_policy_as_envoy_gateway_does(capsys, monkeypatch):
    from stickysplit.tools import try_wasmplugin

    monkeypatch.delenv("STICKY_SPLIT_KEY", raising=False)
    files = [str(envoy.REPO / "wasmplugin" / f) for f in TRY_PAIRS["envoy-gateway"]]
    assert try_wasmplugin.main(["-n", "100", "--eg", "1.6.7", *files]) == 0
    out = capsys.readouterr().out
    assert ("Delivered as Envoy Gateway 1.6.7 would: listener 'nginx-app/nginx-gateway/http', filter "
            "'envoy.filters.http.wasm/envoyextensionpolicy/nginx-app/sticky-split/wasm/0' (disabled, enabled on 3 routes)") in out
    assert "env.hostKeys STICKY_SPLIT_KEY: not set here, a random key for this run" in out


@pytest.mark.parametrize(
    "change,errors",
    [
        (lambda policy, route: route["spec"]["rules"][1]["matches"][0]["headers"][0].update(value="pool-2"),
         ["pool 'pool2' of EnvoyExtensionPolicy sticky-split has no route on x-sticky-split-pool",
          "HTTPRoute nginx-app rules[1] routes x-sticky-split-pool='pool-2', which is not a pool"]),
        (lambda policy, route: policy["spec"]["targetRefs"].__setitem__(
            slice(None), [dict(policy["spec"]["targetRefs"][0], sectionName=n) for n in ("pool1", "pool2")]),
         ["its targetRefs leave out HTTPRoute nginx-app rules[2] (default), the default rule"]),
        (lambda policy, route: policy["spec"]["targetRefs"][0].update(sectionName="default"),
         ["its targetRefs leave out HTTPRoute nginx-app rules[0] (pool1), which routes x-sticky-split-pool='pool1'"]),
    ],
    ids=["pool typo", "pool rules only", "default rule only"],
)
def test_try_wasmplugin_refuses_an_envoy_extension_policy_that_disagrees(change, errors, tmp_path, capsys):
    import yaml

    from stickysplit.tools import try_wasmplugin

    policy, route = (yaml.safe_load((envoy.REPO / "wasmplugin" / f).read_text()) for f in TRY_PAIRS["envoy-gateway"])
    change(policy, route)
    paths = [tmp_path / "policy.yaml", tmp_path / "route.yaml"]
    for path, doc in zip(paths, (policy, route)):
        path.write_text(yaml.safe_dump(doc))
    assert try_wasmplugin.main([str(p) for p in paths]) == 2
    err = capsys.readouterr().err
    for error in errors:
        assert error in err, err
