"""Every query shipped for the filter's metrics, run against a real
Prometheus (the Debian package, scripts/install-prometheus) scraping a real
Envoy: the Grafana dashboard's panels (read from the committed JSON), the
Kiali dashboard's charts as Kiali builds their queries, and the Flagger and
Argo templates. Envoy runs twice: with the stats_config Istio renders for the
annotation sidecar.istio.io/extraStatTags "reason,class,pool", and with the
plain-Envoy config of envoy-test/envoy.yaml.

Known traffic goes through four pools: new users split 80:20 over pool1 and
pool2, users pinned to each, users pinned to pool3 whose application answers
503, and users pinned to pool4, whose cluster points nowhere (failover on,
ejectAfter 2). Every query is evaluated at the timestamp of a scrape that
holds the final counts, over a window that reaches back past the first
scrape (all counters are 0 there): Prometheus then has nothing to
extrapolate, a rate over the window is the count over the window's length,
and the results are compared with the traffic exactly.

Without Prometheus the suite is skipped and says so; under CI=true it fails."""

import math
import os
import re

import pytest
import yaml

from helpers import assert_vm_healthy, requests_counted
from stickysplit import envoy, istio, prometheus, testbed
from stickysplit.http import Client
from stickysplit.metrics import total_at_least, until
from stickysplit.paths import REPO
from stickysplit.testbed import COOKIE, DEBUG_HEADER
from stickysplit.tools import dashboards

EXTRA_STAT_TAGS = ["reason", "class", "pool"]
REASONS = ["rule", "sticky", "drained-pinned", "hash", "ramp", "resigned", "new", "reassigned", "expired", "evicted",
           "forged", "failover"]
CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "gateway"]
POOLS = {"pool1": 80, "pool2": 20, "pool3": 0, "pool4": 0}
EJECT_AFTER = 2
NEW, PINNED = 200, {"pool1": 60, "pool2": 40, "pool3": 20, "pool4": 10}
TOTAL = NEW + sum(PINNED.values())

# The window every query is evaluated over ($__rate_interval, Flagger's
# interval; the Argo template's own window is the same, checked below).
WINDOW, WINDOW_SECONDS = "2m", 120
# What the scrape attaches, as Prometheus's kubernetes-pods job does from the
# gateway pod (Kiali's queries filter on them).
TARGET_LABELS = {"namespace": "istio-ingress", "app": "istio-ingress"}
SCRAPE_LABELS = {"job", "instance", *TARGET_LABELS}

DASHBOARD = yaml.safe_load(dashboards.PATH.read_text())
KIALI = yaml.safe_load((REPO / "wasmplugin/dashboards/kiali-custom-dashboard.yaml").read_text())
FLAGGER = yaml.safe_load((REPO / "wasmplugin/rollout/flagger-metrictemplate.yaml").read_text())
ARGO = yaml.safe_load((REPO / "wasmplugin/rollout/argo-analysistemplate.yaml").read_text())


@pytest.fixture(scope="module")
def prometheus_bin():
    path = prometheus.binary()
    if path is None:
        message = ("no Prometheus found (PROMETHEUS_BIN, or `prometheus` on the PATH): scripts/install-prometheus "
                   "installs the Debian package where apt is available")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires this suite: {message}", pytrace=False)
        pytest.skip(f"{message}; the suite is SKIPPED (with CI=true it fails)")
    return path


def gateway_config(stats):
    """The test gateway with the four pools and the stats config under test."""
    base = envoy.load()
    plugin = envoy.plugin_config(base)
    plugin.update({
        "pools": [{"name": "pool1", "weight": POOLS["pool1"]},
                  {"name": "pool2", "weight": POOLS["pool2"], "cluster": "pool2-cluster"},
                  {"name": "pool3", "weight": POOLS["pool3"]},
                  {"name": "pool4", "weight": POOLS["pool4"]}],
        "failover": {"ejectAfter": EJECT_AFTER, "ejectSeconds": 300},
        "debugHeader": DEBUG_HEADER,
    })
    pool3_at, nowhere = envoy.pipe("pool3"), envoy.pipe("nowhere")

    def edit(config):
        res = config["static_resources"]
        # pool3: an application that answers 503 to everything it gets
        res["listeners"].append(envoy.sample_backend("pool3", pool3_at, status=503))
        res["clusters"].append(envoy.static_cluster("pool3", pool3_at))
        # pool4: a cluster whose endpoint nobody listens on
        res["clusters"].append(envoy.static_cluster("pool4", nowhere))
        for pool in ("pool3", "pool4"):
            testbed.add_pool_route(config, pool, pool)
        if stats == "istio":
            config["stats_config"] = istio.stats_config(EXTRA_STAT_TAGS)

    return base, plugin, edit


def send_traffic(gw):
    """The known traffic; returns {(reason, pool): n}, {(class, pool): n},
    {pool: ejections}, {pool: failovers} it must produce, read from where
    each response was served (and the debug header for the decisions that
    do not show in the serving pool)."""
    requests = {(r, p): 0 for r in REASONS for p in POOLS}
    responses = {(c, p): 0 for c in CLASSES for p in POOLS}
    with Client(gw.gateway) as c:
        for _ in range(NEW):
            r = c.get("/")
            assert r.status == 200 and r.header(DEBUG_HEADER) == f"pool={r.served_by}; reason=new"
            requests[("new", r.served_by)] += 1
            responses[("2xx", r.served_by)] += 1
        for pool in ("pool1", "pool2"):
            for _ in range(PINNED[pool]):
                r = c.get("/", [("Cookie", f"{COOKIE}={pool}")])
                assert (r.status, r.served_by) == (200, pool)
                requests[("sticky", pool)] += 1
                responses[("2xx", pool)] += 1
        for _ in range(PINNED["pool3"]):
            # weight 0: the pin holds (drained-pinned); the application's own 503
            r = c.get("/", [("Cookie", f"{COOKIE}=pool3")])
            assert (r.status, r.served_by, r.header(DEBUG_HEADER)) == (503, "pool3", "pool=pool3; reason=drained-pinned")
            requests[("drained-pinned", "pool3")] += 1
            responses[("5xx", "pool3")] += 1
        for user in range(PINNED["pool4"]):
            r = c.get("/", [("Cookie", f"{COOKIE}=pool4")])
            if user < EJECT_AFTER:
                # Envoy's own 503: the user moves on this response, and after
                # EJECT_AFTER of them the pool is ejected
                assert r.status == 503 and r.served_by is None
                assert r.header(DEBUG_HEADER).startswith("pool=pool4; reason=drained-pinned; failover=")
                requests[("drained-pinned", "pool4")] += 1
                responses[("gateway", "pool4")] += 1
            else:
                # ejected: moved on the request, no failed response
                assert r.status == 200 and r.header(DEBUG_HEADER) == f"pool={r.served_by}; reason=failover"
                requests[("failover", r.served_by)] += 1
                responses[("2xx", r.served_by)] += 1
    ejections = {p: int(p == "pool4") for p in POOLS}
    failovers = {p: EJECT_AFTER if p == "pool4" else 0 for p in POOLS}
    return requests, responses, ejections, failovers


class Run:
    """One gateway's run: its Prometheus, the expected counts, and the
    scrape times the queries are evaluated at."""

    def __init__(self, stats, prom, expected, first, last, memory):
        self.stats, self.prom, self.first, self.last, self.memory = stats, prom, first, last, memory
        self.requests, self.responses, self.ejections, self.failovers = expected

    def instant(self, expr):
        return prometheus.samples(self.prom.query(expr, at=self.last))


def scrape_time(prom):
    """The timestamp of the latest scrape of the gateway (Unix seconds)."""
    [(_, t)] = prometheus.samples(prom.query('timestamp(up{job="gateway"})')).items()
    return t


@pytest.fixture(scope="module", params=["istio", "plain"])
def run(request, prometheus_bin, workdir):
    stats = request.param
    base, plugin, edit = gateway_config(stats)
    # one worker: its VM sees every failure, so the ejection counts are exact
    with envoy.Envoy(base=base, plugin=plugin, workdir=workdir, edit=edit, concurrency=1) as gw:
        jobs = {"gateway": ([f"127.0.0.1:{gw.ports['admin']}"], TARGET_LABELS)}
        with prometheus.Server(jobs, workdir=workdir, scrape_interval="1s") as prom:
            # a scrape with every counter, all at 0, before any traffic
            until(lambda: prometheus.samples(prom.query("count(sticky_split_requests_total)")),
                  {frozenset(): float(len(REASONS) * len(POOLS))}, timeout=15, what="first scrape")
            first = scrape_time(prom)
            expected = send_traffic(gw)
            requests_counted(gw, TOTAL)
            until(lambda: gw.metric("sticky_split_responses_total", "class", "pool"), total_at_least(TOTAL),
                  what="sticky_split_responses_total")
            # a scrape that holds the final counts (they only grow)
            until(lambda: prometheus.samples(prom.query(
                "sum(sticky_split_requests_total) + sum(sticky_split_responses_total)")),
                {frozenset(): float(2 * TOTAL)}, timeout=15, what="a scrape of the final counts")
            last = scrape_time(prom)
            assert last - first < WINDOW_SECONDS - 10, "the run outlasted the query window"
            memory = gw.metric("sticky_split_vm_memory_bytes")
            assert_vm_healthy(gw)
            yield Run(stats, prom, expected, first, last, memory)


def by(samples, *labels):
    """{tuple of the labels' values (or the one value): sample value}."""
    out = {}
    for key, value in samples.items():
        d = dict(key)
        k = tuple(d.get(label) for label in labels)
        out[k[0] if len(k) == 1 else k] = value
    return out


def close(got, want):
    """Two {key: value} maps with the same keys and values equal up to
    floating point (NaN equal to NaN)."""
    assert set(got) == set(want), (sorted(got), sorted(want))
    for k in want:
        g, w = got[k], want[k]
        assert (math.isnan(g) and math.isnan(w)) or math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12), (k, g, w)


# -- the counters themselves ---------------------------------------------------------------------------


def test_counters_are_labelled_and_equal_the_traffic(run):
    for metric, labels, want in [
        ("sticky_split_requests_total", ("reason", "pool"), run.requests),
        ("sticky_split_responses_total", ("class", "pool"), run.responses),
        ("sticky_split_ejections_total", ("pool",), run.ejections),
        ("sticky_split_failovers_total", ("pool",), run.failovers),
    ]:
        got = run.instant(metric)
        # exactly these labels: none folded into the name, no stray one from
        # Istio's other extractors
        for key in got:
            assert {k for k, _ in key} == {"__name__", *labels, *SCRAPE_LABELS}, (metric, key)
        assert by(got, *labels) == {k: float(v) for k, v in want.items()}, metric
    assert sum(run.requests.values()) == sum(run.responses.values()) == TOTAL
    # nothing under another name: every sticky_split series is one of the five
    names = {dict(k)["__name__"] for k in run.instant('{__name__=~"sticky_split.*"}')}
    assert names == {"sticky_split_requests_total", "sticky_split_responses_total", "sticky_split_ejections_total",
                     "sticky_split_failovers_total", "sticky_split_vm_memory_bytes"}
    # the stats config under test is in effect: Istio's inclusion list keeps
    # the prefix wasm (and so wasmcustom.*) but drops Envoy's HTTP stats
    http = run.instant('count({__name__="envoy_http_downstream_rq_total"})')
    assert bool(http) == (run.stats == "plain"), http
    [(_, memory)] = run.instant("sticky_split_vm_memory_bytes").items()
    assert memory == run.memory and memory > 0 and memory % 65536 == 0


# -- the Grafana dashboard --------------------------------------------------------------------------------


def dashboard_targets():
    """(panel title, target) of every query of the committed dashboard."""
    return [(p["title"], t) for p in DASHBOARD["panels"] for t in p.get("targets", [])]


def substituted(expr, window, weight=None):
    """A panel query as Grafana sends it: $__rate_interval, and for the
    panel repeated over the weights variable, its pool and percent."""
    expr = expr.replace("$__rate_interval", window)
    if weight is not None:
        pool, percent = weight
        expr = expr.replace("${weights:text}", pool).replace("${weights}", str(percent))
    assert "$" not in expr, expr
    return expr


def per_pool(counts, metric_filter=lambda key: True):
    """{pool: sum of the counts whose key passes the filter}."""
    out = {p: 0 for p in POOLS}
    for (kind, pool), n in counts.items():
        if metric_filter(kind):
            out[pool] += n
    return out


def expected_panel(run, title, ref, weight):
    """What a panel's query returns at the end of the run: {labels' values: value}."""
    new = per_pool(run.requests, lambda r: r == "new")
    new_total = sum(new.values())
    by_pool = per_pool(run.responses)
    if title == "New-user share per pool":
        return {p: 100 * n / new_total for p, n in new.items()}
    if title.startswith("New users on"):
        pool, percent = weight
        return {(): 100 * new[pool] / new_total} if ref == "A" else {(): float(percent)}
    if title == "Decisions by reason":
        return {r: sum(n for (reason, _), n in run.requests.items() if reason == r) / WINDOW_SECONDS
                for r in REASONS}
    if title == "Responses per pool and class":
        return {(p, c): n / WINDOW_SECONDS for (c, p), n in run.responses.items()}
    if title.startswith("Application error rate"):
        return {p: run.responses[("5xx", p)] / by_pool[p] for p in POOLS}
    if title.startswith("Gateway error rate"):
        return {p: run.responses[("gateway", p)] / by_pool[p] for p in POOLS}
    if title == "Ejections per pool":
        return {p: float(n) for p, n in run.ejections.items()}
    if title == "Failovers per pool":
        return {p: float(n) for p, n in run.failovers.items()}
    if title == "Wasm VM memory":
        [instance] = run.prom.jobs["gateway"][0]
        return {instance: float(run.memory)}
    raise AssertionError(f"no expectation for the panel {title!r}: add one here")


def legend_labels(target):
    """The labels a target's legend shows ({{pool}} {{class}} -> pool, class)."""
    return re.findall(r"\{\{(\w+)\}\}", target["legendFormat"])


def test_every_dashboard_panel_returns_the_traffic(run):
    """Each query of each panel; the panel repeated over the weights variable
    once per pool, the variable set to the test gateway's weights (in
    percent: they add up to 100)."""
    assert sum(POOLS.values()) == 100
    for title, target in dashboard_targets():
        repeated = "${weights" in target["expr"] or "${weights" in title
        for weight in (list(POOLS.items()) if repeated else [None]):
            expr = substituted(target["expr"], WINDOW, weight)
            got = by(run.instant(expr), *legend_labels(target))
            close(got, expected_panel(run, title, target["refId"], weight))


def test_every_dashboard_panel_returns_series_over_grafanas_rate_interval(run):
    """As Grafana runs them: range queries over the run, with the
    $__rate_interval Grafana computes for a 1 s scrape interval (4 s)."""
    for title, target in dashboard_targets():
        weight = ("pool1", POOLS["pool1"]) if "${weights" in target["expr"] else None
        data = run.prom.query_range(substituted(target["expr"], "4s", weight), run.first, run.last, "1s")
        assert data["resultType"] == "matrix" and data["result"], (title, target["expr"])


# -- the Kiali dashboard ----------------------------------------------------------------------------------


def kiali_query(chart, metric, grouping):
    """The query Kiali builds for a chart (kiali/kiali prometheus client:
    fetchRateRange and FetchRange), filtered on the workload's namespace and app."""
    labels = ",".join(f'{k}="{v}"' for k, v in TARGET_LABELS.items())
    group = f" by ({','.join(grouping)})" if grouping else ""
    if chart["dataType"] == "rate":
        return f"sum(rate({metric}{{{labels}}}[{WINDOW}])){group}"
    assert chart["dataType"] == "raw"
    return f"{chart['aggregator']}({metric}{{{labels}}}){group}"


def test_every_kiali_chart_returns_the_traffic_under_each_aggregation(run):
    [board] = KIALI["spec"]["custom_dashboards"]
    assert board["discoverOn"] in {dict(k)["__name__"] for k in run.instant(board["discoverOn"])}
    counts = {
        "sticky_split_requests_total": (("reason", "pool"), run.requests),
        "sticky_split_responses_total": (("class", "pool"), run.responses),
        "sticky_split_ejections_total": (("pool",), {(p,): n for p, n in run.ejections.items()}),
        "sticky_split_failovers_total": (("pool",), {(p,): n for p, n in run.failovers.items()}),
    }
    for item in board["items"]:
        chart = item["chart"]
        [metric] = [m["metricName"] for m in chart["metrics"]]
        aggregations = [a["label"] for a in chart.get("aggregations", [])]
        for grouping in [[], *[[a] for a in aggregations], aggregations]:
            got = by(run.instant(kiali_query(chart, metric, grouping)), *grouping)
            if metric == "sticky_split_vm_memory_bytes":
                assert got == {(): float(run.memory)}, chart["name"]
                continue
            labels, values = counts[metric]
            want = {}
            for key, n in values.items():
                k = tuple(dict(zip(labels, key))[g] for g in grouping)
                k = k[0] if len(k) == 1 else k
                want[k] = want.get(k, 0) + n / WINDOW_SECONDS
            close(got, want)


# -- the Flagger and Argo templates ---------------------------------------------------------------------


def flagger_query(canary, stable):
    """Flagger's rendering of the template ({{ interval }}, {{ variables.x }}
    from the Canary's templateVariables)."""
    variables = {"canary_pool": canary, "stable_pool": stable}
    q = FLAGGER["spec"]["query"].replace("{{ interval }}", WINDOW)
    q = re.sub(r"\{\{ variables\.(\w+) \}\}", lambda m: variables[m.group(1)], q)
    assert "{{" not in q, q
    return q


def argo_query(canary, stable):
    """Argo's rendering ({{args.name}} from the Rollout's analysis args)."""
    [metric] = ARGO["spec"]["metrics"]
    args = {"canary-pool": canary, "stable-pool": stable}
    q = re.sub(r"\{\{args\.([\w-]+)\}\}", lambda m: args[m.group(1)], metric["provider"]["prometheus"]["query"])
    assert "{{" not in q, q
    return q


def error_rate(run, pool):
    return (run.responses[("5xx", pool)] + run.responses[("gateway", pool)]) / per_pool(run.responses)[pool]


@pytest.mark.parametrize("canary,stable", [("pool3", "pool1"), ("pool4", "pool1"), ("pool2", "pool1")],
                         ids=["application 5xx", "dead pool", "healthy"])
def test_flagger_and_argo_templates_return_the_error_excess(run, canary, stable):
    [metric] = ARGO["spec"]["metrics"]
    # the Argo template's own window: the one the exact comparison needs
    assert set(re.findall(r"\[([^\]]+)\]", metric["provider"]["prometheus"]["query"])) == {WINDOW}
    want = error_rate(run, canary) - error_rate(run, stable)
    assert want == {"pool3": 1.0, "pool4": 1.0, "pool2": 0.0}[canary]
    for name, query in [("flagger", flagger_query(canary, stable)), ("argo", argo_query(canary, stable))]:
        [(labels, got)] = run.instant(query).items()
        assert labels == frozenset() and math.isclose(got, want, abs_tol=1e-12), (name, got, want)
    # Argo's verdict (successCondition: result[0] <= limit); Flagger's thresholdRange max is the same limit
    limit = float(re.fullmatch(r"result\[0\] <= ([0-9.]+)", metric["successCondition"]).group(1))
    assert (want <= limit) == (canary == "pool2")
