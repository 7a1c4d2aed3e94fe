"""The committed Grafana dashboard is what its generator prints, and its
shape is what Grafana and the queries need; the Kiali dashboard and the
Flagger and Argo templates have the shape their tools read. Needs no Envoy;
the queries themselves run against a real Prometheus in
tests/test_prometheus.py."""

import importlib.metadata
import json
import re

import yaml

from stickysplit.paths import REPO
from stickysplit.tools import dashboards

DASHBOARD = json.loads(dashboards.PATH.read_text())
TARGETS = [(p["title"], t) for p in DASHBOARD["panels"] for t in p.get("targets", [])]


def test_committed_json_is_what_the_generator_prints():
    assert dashboards.PATH.read_text() == dashboards.render(), "run scripts/dashboards --write"


def test_generator_runs_on_the_pinned_grafana_11_6_build():
    # an unpinned install picks the 10.1 build (its epoch sorts first), whose
    # schema is older
    assert importlib.metadata.version("grafana-foundation-sdk") == "1769699379!11.6.0"
    assert DASHBOARD["schemaVersion"] == 41


def test_fixed_uid_and_a_prometheus_datasource_variable():
    assert DASHBOARD["uid"] == "sticky-split"
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in DASHBOARD["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    for title, target in TARGETS:
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title


def test_weights_variable_lists_pool_percent_pairs_for_the_repeated_panel():
    [weights] = [v for v in DASHBOARD["templating"]["list"] if v["name"] == "weights"]
    assert weights["type"] == "custom" and weights["multi"] and weights["includeAll"]
    # Grafana's custom variable reads "text : value" (spaces around the colon)
    pairs = [tuple(item.split(" : ")) for item in weights["query"].split(", ")]
    assert pairs == [("pool1", "80"), ("pool2", "20")]
    assert [(o["text"], o["value"]) for o in weights["options"][1:]] == pairs
    [repeated] = [p for p in DASHBOARD["panels"] if p.get("repeat")]
    assert repeated["repeat"] == "weights"
    assert {t["expr"] for t in repeated["targets"]} >= {"vector(${weights})"}


def test_every_range_is_the_rate_interval_and_every_query_reads_labels():
    for title, target in TARGETS:
        expr = target["expr"]
        assert set(re.findall(r"\[([^\]]*)\]", expr)) <= {"$__rate_interval"}, (title, expr)
        # the counters' names alone, labels as labels: nothing folded into a name
        for name in re.findall(r"sticky_split_\w+", expr):
            assert name in {"sticky_split_requests_total", "sticky_split_responses_total",
                            "sticky_split_ejections_total", "sticky_split_failovers_total",
                            "sticky_split_vm_memory_bytes"}, (title, name)
        for label in re.findall(r"(?:by \(|[{,] ?)(\w+)(?:=|,|\))", expr):
            assert label in {"reason", "class", "pool"}, (title, label)


def test_panels_cover_the_split_decisions_errors_failover_and_memory():
    exprs = " ".join(t["expr"] for _, t in TARGETS)
    for needed in ('reason="new"', "by (reason)", "by (pool, class)", 'class="5xx"', 'class="gateway"',
                   "sticky_split_ejections_total", "sticky_split_failovers_total", "sticky_split_vm_memory_bytes"):
        assert needed in exprs, needed
    ids = [p["id"] for p in DASHBOARD["panels"] if p["type"] != "row"]
    assert len(ids) == len(set(ids))


# -- the Kiali dashboard and the rollout templates (their queries run in tests/test_prometheus.py) --

# Kiali's MonitoringDashboard fields (kiali/kiali config/dashboards/dashboards_config.go)
KIALI_DASHBOARD_FIELDS = {"name", "title", "runtime", "discoverOn", "items", "externalLinks"}
KIALI_CHART_FIELDS = {"name", "unit", "unitScale", "spans", "startCollapsed", "chartType", "min", "max", "metricName",
                      "metrics", "dataType", "aggregator", "aggregations", "xAxis", "groupLabels", "sortLabel",
                      "sortLabelParseAs"}


def test_kiali_entry_uses_only_kialis_fields_and_the_labelled_counters():
    patch = yaml.safe_load((REPO / "wasmplugin/dashboards/kiali-custom-dashboard.yaml").read_text())
    assert set(patch) == {"spec"} and set(patch["spec"]) == {"custom_dashboards"}
    [board] = patch["spec"]["custom_dashboards"]
    assert set(board) <= KIALI_DASHBOARD_FIELDS and board["name"] == "sticky-split"
    metrics = set()
    for item in board["items"]:
        chart = item["chart"]
        assert set(item) == {"chart"} and set(chart) <= KIALI_CHART_FIELDS, chart
        assert chart["dataType"] in {"raw", "rate", "histogram"}
        assert set(a["label"] for a in chart.get("aggregations", [])) <= {"pool", "reason", "class"}
        metrics |= {m["metricName"] for m in chart["metrics"]}
    assert metrics == {"sticky_split_requests_total", "sticky_split_responses_total", "sticky_split_ejections_total",
                       "sticky_split_failovers_total", "sticky_split_vm_memory_bytes"}
    assert board["discoverOn"] in metrics


def test_rollout_templates_take_the_pool_names_they_use():
    flagger = yaml.safe_load((REPO / "wasmplugin/rollout/flagger-metrictemplate.yaml").read_text())
    assert (flagger["apiVersion"], flagger["kind"]) == ("flagger.app/v1beta1", "MetricTemplate")
    assert flagger["spec"]["provider"]["type"] == "prometheus"
    assert set(re.findall(r"\{\{ (\w+)", flagger["spec"]["query"])) == {"variables", "interval"}
    assert set(re.findall(r"\{\{ variables\.(\w+) \}\}", flagger["spec"]["query"])) == {"canary_pool", "stable_pool"}
    argo = yaml.safe_load((REPO / "wasmplugin/rollout/argo-analysistemplate.yaml").read_text())
    assert (argo["apiVersion"], argo["kind"]) == ("argoproj.io/v1alpha1", "AnalysisTemplate")
    [metric] = argo["spec"]["metrics"]
    used = set(re.findall(r"\{\{args\.([\w-]+)\}\}", metric["provider"]["prometheus"]["query"]))
    assert used == {a["name"] for a in argo["spec"]["args"]} == {"canary-pool", "stable-pool"}
