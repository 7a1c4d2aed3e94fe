"""The Grafana dashboard of sticky-split's metrics, built with
grafana-foundation-sdk (its Grafana 11.6 build, pinned exactly in
scripts/requirements.txt: an unpinned install gets the 10.1 build) and
committed as JSON in wasmplugin/dashboards/sticky-split.grafana.json.

    scripts/dashboards            prints the JSON
    scripts/dashboards --write    writes the committed file
    scripts/dashboards --check    exit status 1 when the committed file differs

Every query reads the labels Istio's extraStatTags (or the three stats_tags
of plain Envoy) give the counters, over Grafana's $__rate_interval, from the
Prometheus data source the `datasource` variable picks. tests/test_prometheus.py
runs each of them against a real Prometheus; tests/test_dashboards.py holds
the committed file to this generator."""

import argparse
import json
import sys

from grafana_foundation_sdk.builders import common, dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphDrawStyle, LegendDisplayMode, LegendPlacement, StackingMode
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef, VariableOption

from ..paths import REPO

PATH = REPO / "wasmplugin/dashboards/sticky-split.grafana.json"
UID = "sticky-split"

# The configured weights are not a metric (they live in the WasmPlugin), so
# the dashboard takes them as a custom variable of `pool : percent` pairs: the
# share of new users each pool should get, its weight over the sum of the
# weights. The default is the shipped manifests' 80:20; a user edits it to
# their own. One panel per entry shows that pool's observed share beside it.
WEIGHTS = "weights"
DEFAULT_WEIGHTS = [("pool1", "80"), ("pool2", "20")]

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"

REQUESTS = "sticky_split_requests_total"
RESPONSES = "sticky_split_responses_total"


def query(ref, expr, legend):
    return (prometheus.Dataquery().ref_id(ref).expr(expr).legend_format(legend).range()
            .datasource(PROMETHEUS))


def selector(metric, **labels):
    """metric{label="value", ...} (the labels in the order given)."""
    matchers = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{matchers}}}" if matchers else metric


def rate(selector, by=None):
    """sum [by (labels)] (rate(selector[$__rate_interval]))"""
    if not by:
        return f"sum(rate({selector}[{RATE}]))"
    return f"sum by ({', '.join(by)}) (rate({selector}[{RATE}]))"


def panel(panel_id, title, description, unit, width, *targets, stacked=False, bars=False, height=8):
    p = (timeseries.Panel().id(panel_id).title(title).description(description).unit(unit)
         .span(width).height(height).datasource(PROMETHEUS)
         .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                 .placement(LegendPlacement.RIGHT if width == 24 else LegendPlacement.BOTTOM).show_legend(True))
         .min(0))
    if stacked:
        p = p.stacking(common.StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(40)
    if bars:
        p = p.draw_style(GraphDrawStyle.BARS).fill_opacity(80)
    for t in targets:
        p = p.with_target(t)
    return p


def error_rate(cls):
    """The share of each pool's responses in `cls`."""
    return f"{rate(selector(RESPONSES, **{'class': cls}), ['pool'])} / {rate(RESPONSES, ['pool'])}"


def weights_variable():
    text = ", ".join(f"{pool} : {percent}" for pool, percent in DEFAULT_WEIGHTS)
    options = [VariableOption(selected=True, text=pool, value=percent) for pool, percent in DEFAULT_WEIGHTS]
    return (dashboard.CustomVariable(WEIGHTS).label("Configured weights (pool : % of new users)")
            .description("Each pool's configured share of new users, in percent (its weight over the sum of "
                         "the weights), as `pool : percent` pairs separated by commas. Edit it to match your "
                         "WasmPlugin's pools; the weights are not exported as a metric.")
            .values(text).multi(True).include_all(True)
            .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
            .options([VariableOption(selected=True, text="All", value="$__all"), *options]))


def build():
    new = selector(REQUESTS, reason="new")
    d = (dashboard.Dashboard("sticky-split").uid(UID)
         .description("sticky-split's split, routing decisions, responses and errors per pool, ejections, "
                      "failovers and VM memory, from the filter's counters (labels from Istio's "
                      "extraStatTags: reason, class, pool).")
         .tags(["sticky-split", "istio", "envoy", "wasm"])
         .editable().tooltip(DashboardCursorSync.CROSSHAIR).refresh("30s").time("now-1h", "now")
         .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
         .with_variable(weights_variable()))

    d = d.with_row(dashboard.Row("Split of new users"))
    d = d.with_panel(panel(
        1, "New-user share per pool",
        "Each pool's share of the users the filter placed as new (no valid cookie), in percent.",
        "percent", 24,
        query("A", f"100 * {rate(new, ['pool'])} / scalar({rate(new)})", "{{pool}}")))
    d = d.with_panel(panel(
        2, "New users on ${weights:text}: observed and configured",
        "The pool's share of new users beside its configured share, from the `weights` variable "
        "(one panel per entry).",
        "percent", 6,
        query("A", f"100 * {rate(selector(REQUESTS, reason='new', pool='${weights:text}'))} / {rate(new)}",
              "observed"),
        query("B", "vector(${weights})", "configured"),
        height=7).repeat(WEIGHTS).repeat_direction("h").max_per_row(4))

    d = d.with_row(dashboard.Row("Routing decisions"))
    d = d.with_panel(panel(
        3, "Decisions by reason",
        "Requests per second by the reason of the filter's decision (new, sticky, rule, hash, ramp, "
        "drained-pinned, resigned, reassigned, expired, evicted, forged, failover). A rise of forged is "
        "tampering; drained-pinned falls during a drain, resigned during a key rotation.",
        "reqps", 24,
        query("A", rate(REQUESTS, ["reason"]), "{{reason}}"), stacked=True))

    d = d.with_row(dashboard.Row("Responses and errors"))
    d = d.with_panel(panel(
        4, "Responses per pool and class",
        "Responses per second by pool and class: 1xx to 5xx as the application answered, gateway when "
        "Envoy answered because it could not reach the pool.",
        "reqps", 24,
        query("A", rate(RESPONSES, ["pool", "class"]), "{{pool}} {{class}}"), stacked=True))
    d = d.with_panel(panel(
        5, "Application error rate per pool (5xx)",
        "The share of each pool's responses that are the application's own 5xx.",
        "percentunit", 12, query("A", error_rate("5xx"), "{{pool}}")))
    d = d.with_panel(panel(
        6, "Gateway error rate per pool (pool unreachable)",
        "The share of each pool's responses that Envoy produced because it could not get one from the "
        "pool (refused or reset connections, no healthy host, overflow).",
        "percentunit", 12, query("A", error_rate("gateway"), "{{pool}}")))

    d = d.with_row(dashboard.Row("Failover"))
    d = d.with_panel(panel(
        7, "Ejections per pool",
        "Times a pool was ejected after ejectAfter consecutive gateway-level failures, per interval.",
        "short", 12,
        query("A", f"sum by (pool) (increase(sticky_split_ejections_total[{RATE}]))", "{{pool}}"), bars=True))
    d = d.with_panel(panel(
        8, "Failovers per pool",
        "Users moved off a pool on its failing response, per interval (those moved on their request while "
        "it is ejected are the failover reason under Decisions by reason).",
        "short", 12,
        query("A", f"sum by (pool) (increase(sticky_split_failovers_total[{RATE}]))", "{{pool}}"), bars=True))

    d = d.with_row(dashboard.Row("VM"))
    d = d.with_panel(panel(
        9, "Wasm VM memory",
        "Linear memory of all of a gateway's sticky-split VMs (the main thread's and one per worker). Wasm "
        "memory never shrinks: a rise is growth.",
        "bytes", 24, query("A", "sticky_split_vm_memory_bytes", "{{instance}}")))
    return d.build()


def render():
    """The dashboard as committed: indented JSON, keys sorted, a final newline."""
    return json.dumps(json.loads(json.dumps(build(), cls=JSONEncoder)), indent=2, sort_keys=True) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/dashboards", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {PATH.relative_to(REPO)}")
    mode.add_argument("--check", action="store_true", help=f"exit 1 when {PATH.relative_to(REPO)} differs")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        PATH.parent.mkdir(parents=True, exist_ok=True)
        PATH.write_text(text)
        print(f"wrote {PATH.relative_to(REPO)}")
    elif args.check:
        if not PATH.exists() or PATH.read_text() != text:
            print(f"{PATH.relative_to(REPO)} is not what the generator prints: run scripts/dashboards --write",
                  file=sys.stderr)
            return 1
        print(f"{PATH.relative_to(REPO)}: up to date")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
