//! Counter names, defined once per VM when the config loads: per (pool,
//! reason) for requests, per (pool, class) for responses, per pool for
//! ejections and for users moved off a failing pool. Labels are in the name,
//! in the convention Istio's `extraStatTags` turn into Prometheus labels
//! (each tag `T` becomes the stats tag regex `(T=\.=(.*?);\.;)`; plain Envoy
//! takes the same three rules, see docs/metrics.md):
//!
//! ```text
//! sticky_split_requests_total.reason=.=<reason>;.;pool=.=<pool>;.;
//!   -> sticky_split_requests_total{reason="<reason>",pool="<pool>"}
//! sticky_split_responses_total.class=.=<class>;.;pool=.=<pool>;.;
//! sticky_split_ejections_total.pool=.=<pool>;.;
//! sticky_split_failovers_total.pool=.=<pool>;.;
//! ```
//! The name comes first, so that without the tag rules the counters still
//! sort by metric. Pool names are tokens (no `;` or `=`), so a value cannot
//! end early; `config` refuses the ones Istio's other extractors would read.

use std::cell::Cell;

use crate::decide::Reason;
use crate::outcome::Class;

pub const REQUESTS_TOTAL: &str = "sticky_split_requests_total";
pub const RESPONSES_TOTAL: &str = "sticky_split_responses_total";
pub const EJECTIONS_TOTAL: &str = "sticky_split_ejections_total";
pub const FAILOVERS_TOTAL: &str = "sticky_split_failovers_total";

/// Gauge: the linear memory of all of this Envoy's sticky-split VMs, in bytes.
/// Each VM adds the change in its own size every second (see [`MemoryShare`]),
/// so the gauge is their sum; Wasm memory only grows, so a rise is growth.
pub const VM_MEMORY_BYTES: &str = "sticky_split_vm_memory_bytes";

/// One VM's share of the [`VM_MEMORY_BYTES`] gauge. Envoy holds one gauge for
/// every VM (main thread and workers); if each set it to its own size, the
/// reading would be whichever VM wrote last. Each VM instead adds the change
/// since its last report, and takes its share back out when it ends.
#[derive(Debug, Default)]
pub struct MemoryShare {
    reported: Cell<u64>,
}

impl MemoryShare {
    /// The amount to add to the gauge now that this VM holds `bytes`.
    pub fn update(&self, bytes: u64) -> i64 {
        let before = self.reported.replace(bytes);
        delta(before, bytes)
    }

    /// The amount to add to the gauge when this VM's share leaves it.
    pub fn withdraw(&self) -> i64 {
        delta(self.reported.replace(0), 0)
    }
}

fn delta(before: u64, after: u64) -> i64 {
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    signed(after).saturating_sub(signed(before))
}

/// `name`, tagged with (tag, value) pairs in the extraStatTags convention.
fn tagged(name: &str, tags: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(name.len() + 48);
    out.push_str(name);
    out.push('.');
    for (tag, value) in tags {
        out.push_str(tag);
        out.push_str("=.=");
        out.push_str(value);
        out.push_str(";.;");
    }
    out
}

pub fn counter_name(pool: &str, reason: Reason) -> String {
    tagged(
        REQUESTS_TOTAL,
        &[("reason", reason.as_str()), ("pool", pool)],
    )
}

/// Position of the (pool, reason) request counter: the table starts with
/// `pools * Reason::ALL.len()` of them, pool-major.
pub fn slot(pool: usize, reason: Reason) -> usize {
    pool * Reason::ALL.len() + reason.index()
}

/// Positions of the other counters of a table for `pools` pools: after the
/// request counters, the response counters (pool-major), then ejections,
/// then failovers, one per pool.
#[derive(Debug, Clone, Copy)]
pub struct CounterLayout {
    pub pools: usize,
}

impl CounterLayout {
    fn responses_start(self) -> usize {
        self.pools * Reason::ALL.len()
    }

    /// The (pool, class) response counter.
    pub fn response(self, pool: usize, class: Class) -> usize {
        self.responses_start() + pool * Class::COUNTED.len() + class.index()
    }

    pub fn ejection(self, pool: usize) -> usize {
        self.responses_start() + self.pools * Class::COUNTED.len() + pool
    }

    pub fn failover(self, pool: usize) -> usize {
        self.ejection(self.pools) + pool
    }

    /// How many counters the table has.
    pub fn len(self) -> usize {
        self.failover(self.pools)
    }

    pub fn is_empty(self) -> bool {
        self.pools == 0
    }
}

/// Every counter name for these pool names, in slot order.
pub fn all_counters<'a>(pools: impl IntoIterator<Item = &'a str> + Clone) -> Vec<String> {
    let requests = pools
        .clone()
        .into_iter()
        .flat_map(|pool| Reason::ALL.iter().map(move |&r| counter_name(pool, r)));
    let responses = pools.clone().into_iter().flat_map(|pool| {
        Class::COUNTED
            .iter()
            .map(move |c| tagged(RESPONSES_TOTAL, &[("class", c.as_str()), ("pool", pool)]))
    });
    let ejections = pools
        .clone()
        .into_iter()
        .map(|pool| tagged(EJECTIONS_TOTAL, &[("pool", pool)]));
    let failovers = pools
        .into_iter()
        .map(|pool| tagged(FAILOVERS_TOTAL, &[("pool", pool)]));
    requests
        .chain(responses)
        .chain(ejections)
        .chain(failovers)
        .collect()
}

/// Counts per (pool, reason) held in the VM between flushes to the host: a
/// host call per request would cost more than the counting. The glue flushes
/// every second (the VM's tick), so counters trail the traffic by at most that.
#[derive(Debug, Default)]
pub struct CounterBatch {
    ids: Vec<u32>,
    counts: Vec<Cell<u64>>,
}

impl CounterBatch {
    /// `ids[slot]` is the host's metric id for that slot.
    pub fn new(ids: Vec<u32>) -> Self {
        let counts = ids.iter().map(|_| Cell::new(0)).collect();
        CounterBatch { ids, counts }
    }

    pub fn count(&self, slot: usize) {
        if let Some(c) = self.counts.get(slot) {
            c.set(c.get().saturating_add(1));
        }
    }

    /// Every (metric id, count) not yet flushed, zeroing them.
    pub fn drain(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.ids
            .iter()
            .zip(&self.counts)
            .filter_map(|(&id, c)| match c.take() {
                0 => None,
                n => Some((id, n)),
            })
    }
}
