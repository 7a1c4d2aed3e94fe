//! sticky-split, the module: the proxy-wasm glue over `sticky_split_core`,
//! and the only code that talks to the host. The root context holds the
//! config, the generator and the counters per VM; the HTTP context answers
//! the core's reads and applies its plans. Built for wasm32 only.

#![cfg(target_arch = "wasm32")]

mod host;
mod http;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use rand_core::Rng;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, MetricType, Status};

use sticky_split_core::config::Config;
use sticky_split_core::health::{Health, ATTEMPTS};
use sticky_split_core::metrics::{self, CounterBatch};
use sticky_split_core::rng::{self, Prng};

// `_initialize` is the module's entry point; it has to be exported unmangled.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        // After set_log_level, whose own hook this replaces (that one
        // unwraps the log call): a panic inside the SDK or a dependency
        // traps the VM, and this line is what the operator gets to see.
        std::panic::set_hook(Box::new(|info| {
            super::host::log_critical(&format!("sticky-split panicked, the VM traps: {info}"));
        }));
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root::default())
        });
    }}
}

type SharedRng = Rc<RefCell<Prng>>;

/// The VM's timer: how soon a worker learns what others wrote about pool
/// health (a failure it sees itself, it learns at once).
const TICK: Duration = Duration::from_millis(200);
/// Counters and the memory gauge go to Envoy every fifth tick: once a second.
const TICKS_PER_FLUSH: u32 = 5;
/// The shared-data key of the pool health board, before the plugin's name.
const SHARED_HEALTH_KEY: &str = "sticky-split.health.v1";
type SharedHealth = Rc<RefCell<Health>>;

#[derive(Default)]
struct Root {
    config: Option<Rc<Config>>,
    rng: Option<SharedRng>,
    /// Pool health for failover: this VM's view of the gateway's board.
    health: Option<SharedHealth>,
    counters: Rc<CounterBatch>,
    /// Counters of earlier configurations, flushed until no stream holds them.
    retired: Vec<Rc<CounterBatch>>,
    /// Gauge: the VMs' linear memory in bytes, this VM's share added every second.
    memory_gauge: Option<u32>,
    ticks: u32,
}

thread_local! {
    /// This VM's share of the memory gauge: one per VM, however many root
    /// contexts (plugin configurations) it runs.
    static MEMORY_SHARE: metrics::MemoryShare = metrics::MemoryShare::default();
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        self.flush_counters();
        // Another root context in this VM, if any, adds it back on its tick.
        self.add_to_memory_gauge(MEMORY_SHARE.with(|m| m.withdraw()));
        true
    }
}

impl Root {
    /// Pool health that follows the gateway's board, in shared data under a
    /// key of this plugin's own: Istio sets no vm_id, so every plugin of the
    /// proxy shares one namespace, and the plugin's name tells them apart.
    fn shared_health(&self, health: Health, config: &Config) -> Health {
        let plugin = host::property(&["plugin_name"])
            .map(|name| String::from_utf8_lossy(&name).into_owned())
            .unwrap_or_default();
        let me = self
            .rng
            .as_ref()
            .and_then(|r| r.try_borrow_mut().ok())
            .map_or(1, |mut r| r.next_u64() | 1);
        let store = host::SharedData {
            key: format!("{SHARED_HEALTH_KEY}/{plugin}"),
        };
        let names = config.pools.iter().map(|p| p.name.clone()).collect();
        health.share(names, Box::new(store), me, host::now_seconds())
    }

    fn add_to_memory_gauge(&self, change: i64) {
        if let (Some(id), true) = (self.memory_gauge, change != 0) {
            host::increment_metric(id, change);
        }
    }

    /// Hands the counts gathered since the last flush to the host.
    fn flush_counters(&mut self) {
        for batch in std::iter::once(&self.counters).chain(&self.retired) {
            for (id, n) in batch.drain() {
                host::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        self.retired.retain(|p| Rc::strong_count(p) > 1);
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        let clock = host::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let (rng, from_entropy) = rng::seeded_or(clock);
        if !from_entropy {
            log::warn!("the host gave no entropy; seeding pool choice from the clock");
        }
        self.rng = Some(Rc::new(RefCell::new(rng)));
        self.memory_gauge = host::define_metric(MetricType::Gauge, metrics::VM_MEMORY_BYTES)
            .map_err(|status| log::warn!("memory gauge unavailable: {status:?}"))
            .ok();
        host::set_tick_period(TICK);
        true
    }

    fn on_tick(&mut self) {
        // what other workers wrote about pool health, every tick
        if let Some(health) = &self.health {
            if let Ok(mut h) = health.try_borrow_mut() {
                let now = host::now_seconds();
                h.sync(now);
                // the core holds these back to one line per ten seconds
                if let Some(n) = h.give_up_report(now) {
                    log::warn!(
                        "pool health board: {n} update(s) gave up after {ATTEMPTS} \
                         compare-and-swap conflicts in a row; this worker's own view \
                         holds those changes until the next one reaches the board"
                    );
                }
            }
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % TICKS_PER_FLUSH == 0 {
            self.flush_counters();
            let bytes = core::arch::wasm32::memory_size::<0>() as u64 * 65_536;
            self.add_to_memory_gauge(MEMORY_SHARE.with(|m| m.update(bytes)));
        }
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = host::plugin_configuration();
        match Config::from_json(&bytes) {
            Ok(config) => {
                log::info!(
                    "configured {} pools ({}), cookie {:?}, route header {:?}",
                    config.pools.len(),
                    config
                        .pools
                        .iter()
                        .map(|p| format!("{}={}", p.name, p.weight))
                        .collect::<Vec<_>>()
                        .join(", "),
                    config.cookie.name,
                    config.route_header
                );
                // Defined once per configuration; Envoy hands back the same
                // counter for a name it already knows, so a reload keeps counts.
                let counters: Result<Vec<u32>, Status> =
                    metrics::all_counters(config.pools.iter().map(|p| p.name.as_str()))
                        .iter()
                        .map(|name| host::define_metric(MetricType::Counter, name))
                        .collect();
                let old = std::mem::take(&mut self.counters);
                self.retired.push(old);
                match counters {
                    Ok(ids) => self.counters = Rc::new(CounterBatch::new(ids)),
                    Err(status) => log::warn!("metrics unavailable: {status:?}"),
                }
                self.flush_counters();
                self.health = config
                    .health()
                    .map(|h| Rc::new(RefCell::new(self.shared_health(h, &config))));
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                log::error!("configuration refused: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(http::HttpFilter::new(
            self.config.clone(),
            self.rng.clone(),
            self.health.clone(),
            self.counters.clone(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
