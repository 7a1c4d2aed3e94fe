"""A short soak in the test command (scripts/soak runs the long one): mixed
clients for 20 s, no 5xx or errors, VM memory flat, no VM restarts, Envoy's
RSS not growing beyond noise."""

from stickysplit.tools import soak


def test_short_soak(workdir):
    r = soak.run(20, workdir=workdir)
    assert r["requests"] > 2000, r
    assert all(n > 0 for n in r["by_kind"].values()), r
    assert (r["5xx"], r["errors"], r["panics_in_log"]) == (0, 0, 0), r
    assert r["vm_memory_start"] and r["vm_memory_end"] == r["vm_memory_start"], r
    assert r["vms_created_end"] == r["vms_created_start"], r
    # RSS: allow allocator noise, not growth with traffic
    assert r["rss_end_kib"] <= r["rss_start_kib"] * 1.10 + 4096, r
