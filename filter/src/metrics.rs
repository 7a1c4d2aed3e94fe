//! Counter names: one counter per (pool, reason), defined once per VM when
//! the config loads. Pool and reason are in the name, in a form Envoy's
//! stats tag extraction turns into Prometheus labels (see README, Metrics):
//!
//! ```text
//! sticky_split_requests_total_reason=<reason>_pool=<pool>
//!   -> sticky_split_requests_total{reason="<reason>",pool="<pool>"}
//! ```
//! The pool comes last because pool names may contain `_` and `.`; reason
//! names never do.

use std::cell::Cell;

use crate::decide::Reason;

pub const REQUESTS_TOTAL: &str = "sticky_split_requests_total";

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

pub fn counter_name(pool: &str, reason: Reason) -> String {
    format!("{REQUESTS_TOTAL}_reason={}_pool={pool}", reason.as_str())
}

/// Position of the (pool, reason) counter in a table of
/// `pools * Reason::ALL.len()` counters, pool-major.
pub fn slot(pool: usize, reason: Reason) -> usize {
    pool * Reason::ALL.len() + reason.index()
}

/// Every (slot, name) for these pool names, in slot order.
pub fn all_counters<'a>(pools: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    pools
        .into_iter()
        .flat_map(|pool| Reason::ALL.iter().map(move |&r| counter_name(pool, r)))
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
