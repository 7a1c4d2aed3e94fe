//! The proxy-wasm glue: reads what the core needs from Envoy, applies the
//! decision. Everything that can be decided without the host lives in the core.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

use crate::config::{Config, Secure};
use crate::decide::{decide, settled_by_first_cookie_header, Decision};
use crate::metrics::{self, Pending};
use crate::request::{self, Request};
use crate::rng::Xoshiro256pp;

// `_initialize` is the module's entry point; it has to be exported unmangled.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::Root::default())
        });
    }}
}

type SharedRng = Rc<RefCell<Xoshiro256pp>>;

#[derive(Default)]
struct Root {
    config: Option<Rc<Config>>,
    rng: Option<SharedRng>,
    counters: Rc<Pending>,
    /// Counters of earlier configurations, flushed until no stream holds them.
    retired: Vec<Rc<Pending>>,
    /// Gauge: the VMs' linear memory in bytes, this VM's share added every second.
    memory_gauge: Option<u32>,
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
    fn add_to_memory_gauge(&self, change: i64) {
        if let (Some(id), true) = (self.memory_gauge, change != 0) {
            let _ = hostcalls::increment_metric(id, change);
        }
    }

    /// Hands the counts gathered since the last flush to the host.
    fn flush_counters(&mut self) {
        for pending in std::iter::once(&self.counters).chain(&self.retired) {
            for (id, n) in pending.drain() {
                let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        self.retired.retain(|p| Rc::strong_count(p) > 1);
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        let fallback = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let (rng, from_entropy) = Xoshiro256pp::from_entropy_or(fallback);
        if !from_entropy {
            log::warn!("the host gave no entropy; seeding pool choice from the clock");
        }
        self.rng = Some(Rc::new(RefCell::new(rng)));
        self.memory_gauge =
            hostcalls::define_metric(MetricType::Gauge, metrics::VM_MEMORY_BYTES).ok();
        self.set_tick_period(Duration::from_secs(1));
        true
    }

    fn on_tick(&mut self) {
        self.flush_counters();
        let bytes = core::arch::wasm32::memory_size::<0>() as u64 * 65_536;
        self.add_to_memory_gauge(MEMORY_SHARE.with(|m| m.update(bytes)));
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
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
                        .map(|name| hostcalls::define_metric(MetricType::Counter, name))
                        .collect();
                let old = std::mem::take(&mut self.counters);
                self.retired.push(old);
                match counters {
                    Ok(ids) => self.counters = Rc::new(Pending::new(ids)),
                    Err(status) => log::warn!("metrics unavailable: {status:?}"),
                }
                self.flush_counters();
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
        Some(Box::new(HttpFilter {
            config: self.config.clone(),
            rng: self.rng.clone(),
            counters: self.counters.clone(),
            set_cookie: None,
            debug: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct HttpFilter {
    config: Option<Rc<Config>>,
    rng: Option<SharedRng>,
    counters: Rc<Pending>,
    /// The Set-Cookie value to append to the response, when (re)assigned.
    set_cookie: Option<String>,
    /// (header, value) of the debug header, when configured.
    debug: Option<(String, String)>,
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(config), Some(rng)) = (self.config.clone(), self.rng.clone()) else {
            return Action::Continue;
        };
        let Ok(mut rng) = rng.try_borrow_mut() else {
            // Not reachable in a single-threaded VM; still, never panic.
            return Action::Continue;
        };
        let decision = if config.reads().header_map {
            let headers = self.get_http_request_headers_bytes();
            decide(&config, &Request::new(&headers), &mut *rng)
        } else {
            // Only what the config reads, one host call each: the first
            // Cookie header, and the path if rules look at it.
            let mut headers = Vec::with_capacity(2);
            if config.reads().path {
                if let Some(path) = self.get_http_request_header_bytes(":path") {
                    headers.push((":path".to_string(), path));
                }
            }
            if let Some(cookie) = self.get_http_request_header_bytes("cookie") {
                headers.push(("cookie".to_string(), cookie));
            }
            let req = Request::new(&headers);
            let partial = decide(&config, &req, &mut *rng);
            let first = req.cookie_headers().next();
            match first {
                Some(first) if !settled_by_first_cookie_header(&config, first, &partial) => {
                    // Another Cookie header may hold what the first lacks.
                    let headers = self.get_http_request_headers_bytes();
                    decide(&config, &Request::new(&headers), &mut *rng)
                }
                _ => partial,
            }
        };
        drop(rng);
        self.apply(&config, decision);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(cookie) = self.set_cookie.take() {
            // Appended: the application's own Set-Cookie headers stay as they are.
            self.add_http_response_header("set-cookie", &cookie);
        }
        if let Some((name, value)) = self.debug.take() {
            self.set_http_response_header(&name, Some(&value));
        }
        Action::Continue
    }
}

impl HttpFilter {
    fn apply(&mut self, config: &Config, decision: Decision) {
        let Some(pool) = config.pool(decision.pool) else {
            return;
        };
        // Replace, not add: every copy a client sent is dropped, so a client
        // cannot choose its pool by sending these headers.
        self.set_http_request_header(&config.route_header, Some(&pool.name));
        if let Some(cluster_header) = &config.cluster_header {
            self.set_http_request_header(cluster_header, Some(&pool.cluster));
        }
        clear_route_cache();
        if let Some(value) = decision
            .cookie
            .and_then(|payload| config.encode_cookie(payload))
        {
            // `:scheme` is read only when it matters: a cookie is issued and
            // Secure follows the request.
            let https = config.cookie.secure == Secure::Auto
                && self
                    .get_http_request_header_bytes(":scheme")
                    .is_some_and(|s| request::is_https(&s));
            self.set_cookie = Some(config.set_cookie_header(&value, https));
        }
        self.counters
            .count(metrics::slot(decision.pool, decision.reason));
        if let Some(name) = &config.debug_header {
            self.debug = Some((
                name.clone(),
                format!("pool={}; reason={}", pool.name, decision.reason.as_str()),
            ));
        }
    }
}

/// Makes Envoy match the route again now that the routing headers are set.
///
/// Envoy picks the route before the filter chain runs. Older Envoys dropped
/// that choice whenever a Proxy-Wasm 0.2.x filter changed request headers;
/// newer ones (envoyproxy/envoy#36671) keep it unless the filter calls the
/// `clear_route_cache` foreign function. Calling it is right on both: an
/// Envoy without it answers NotFound and re-routes on its own.
fn clear_route_cache() {
    match hostcalls::call_foreign_function("clear_route_cache", None) {
        Ok(_) | Err(Status::NotFound) => {}
        Err(status) => {
            let _ = hostcalls::log(
                LogLevel::Warn,
                &format!("clear_route_cache failed: {status:?}"),
            );
        }
    }
}
