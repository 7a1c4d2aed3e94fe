"""A short soak in the test command (scripts/soak runs the long one): mixed
clients for 20 s, no 5xx or errors, VM memory flat, no VM restarts, Envoy's
RSS not growing beyond noise; and 12 s of the failover stress run
(scripts/soak --failover)."""

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


def test_short_failover_stress(workdir):
    """scripts/soak --failover for 12 s: pools die under keep-alive users and
    the listener is pushed every 2 s; every 5xx follows a pool death, and no
    user sees more than two failed responses for one death."""
    r = soak.run_failover(12, workdir=workdir, concurrency=2, users=32)
    assert r["deaths"] >= 1 and sum(r["failures_per_death"]) > 0, r
    assert 1 <= r["max_per_user_per_death"] <= 2, r
    assert (r["unattributed_5xx"], r["errors"], r["panics_in_log"]) == (0, 0, 0), r
