//! One HTTP stream: answers the core's reads from Envoy, applies its
//! decision to the request, and on the response counts the outcome, feeds
//! the pool's health, and adds the cookie, session and debug headers.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, Status};

use super::{SharedHealth, SharedRng};
use crate::config::Config;
use crate::decide::fetch::{respond, route, HeaderSource, Responded, Routed};
use crate::health::Health;
use crate::metrics::{self, CounterBatch, Table};
use crate::request::Headers;
use crate::rng::Prng;

pub(super) struct HttpFilter {
    config: Option<Rc<Config>>,
    rng: Option<SharedRng>,
    health: Option<SharedHealth>,
    counters: Rc<CounterBatch>,
    /// The decision for this stream's request, once made.
    routed: Option<Routed>,
    /// Whether the response headers were seen (a probe without them was
    /// abandoned).
    answered: bool,
}

impl HttpFilter {
    pub(super) fn new(
        config: Option<Rc<Config>>,
        rng: Option<SharedRng>,
        health: Option<SharedHealth>,
        counters: Rc<CounterBatch>,
    ) -> Self {
        HttpFilter {
            config,
            rng,
            health,
            counters,
            routed: None,
            answered: false,
        }
    }
}

/// The current stream's request headers and the clock, read from Envoy on
/// demand.
struct Host<'a>(&'a HttpFilter);

impl HeaderSource for Host<'_> {
    fn first(&mut self, name: &str) -> Option<Vec<u8>> {
        self.0.get_http_request_header_bytes(name)
    }

    fn all(&mut self) -> Headers {
        self.0.get_http_request_headers_bytes()
    }

    fn now(&mut self) -> u64 {
        self.0
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        let Some(routed) = self.with_state(|host, rng, health| route(&config, host, rng, health))
        else {
            return Action::Continue;
        };
        self.apply(&config, &routed);
        self.routed = Some(routed);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.answered = true;
        let (Some(config), Some(routed)) = (self.config.clone(), self.routed.take()) else {
            return Action::Continue;
        };
        if !config.reads_responses() {
            // neither counters nor failover look at the response
            self.add_headers(&config, routed, None);
            return Action::Continue;
        }
        let status = self
            .get_http_response_header_bytes(":status")
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok())
            .unwrap_or(0);
        // Envoy's response flags tell its own failures from the application's
        // 5xx; read only for a 5xx.
        let flags = if status >= 500 {
            self.response_flags()
        } else {
            0
        };
        let responded = self.with_state(|host, rng, health| {
            respond(&config, host, rng, health, &routed, status, flags)
        });
        match responded {
            Some(responded) => self.answer(&config, routed, responded),
            None => self.add_headers(&config, routed, None),
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let (Some(routed), false) = (&self.routed, self.answered) {
            if routed.probe {
                if let Some(mut h) = self.health.as_ref().and_then(|h| h.try_borrow_mut().ok()) {
                    h.probe_abandoned(routed.decision.pool);
                }
            }
        }
    }
}

impl HttpFilter {
    /// Runs `f` with the host, the VM's generator and its pool health (when
    /// failover is on); `None` without a generator or when one is already
    /// borrowed (not reachable in a single-threaded VM; still, never panic).
    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut Host, &mut Prng, Option<&mut Health>) -> T,
    ) -> Option<T> {
        let rng = self.rng.as_ref()?;
        let mut rng = rng.try_borrow_mut().ok()?;
        let mut health = self.health.as_ref().and_then(|h| h.try_borrow_mut().ok());
        Some(f(&mut Host(self), &mut rng, health.as_deref_mut()))
    }

    fn apply(&mut self, config: &Config, routed: &Routed) {
        let decision = routed.decision;
        let Some(pool) = config.pool(decision.pool) else {
            return;
        };
        // Replace, not add: every copy a client sent is dropped, so a client
        // cannot choose its pool by sending these headers.
        self.set_http_request_header(&config.route_header, Some(&pool.name));
        if let Some(cluster_header) = &config.cluster_header {
            self.set_http_request_header(cluster_header, Some(&pool.cluster));
        }
        if config.clear_route_cache {
            clear_route_cache();
        }
        self.counters
            .count(metrics::slot(decision.pool, decision.reason));
    }

    fn answer(&mut self, config: &Config, routed: Routed, responded: Responded) {
        let pool = routed.decision.pool;
        let table = Table {
            pools: config.pools.len(),
        };
        if config.response_counters {
            if let Some(slot) = table.response(pool, responded.class) {
                self.counters.count(slot);
            }
        }
        if responded.ejected {
            self.counters.count(table.ejection(pool));
            log::warn!(
                "pool {} ejected after gateway-level failures",
                config.pool(pool).map_or("?", |p| p.name.as_str())
            );
        }
        if responded.failed_over.is_some() {
            self.counters.count(table.failover(pool));
        }
        self.add_headers(config, routed, Some(responded));
    }

    /// The Set-Cookie, session and debug headers of the response: the user's
    /// new value when a failing response moved them, else the planned one.
    fn add_headers(&mut self, config: &Config, routed: Routed, responded: Option<Responded>) {
        let pool = routed.decision.pool;
        let (set_cookie, session, moved) = match responded {
            Some(Responded {
                failed_over: Some(moved),
                set_cookie,
                session_value,
                ..
            }) => (set_cookie, session_value, Some(moved)),
            _ => (routed.set_cookie, routed.session_value, None),
        };
        if let Some(cookie) = set_cookie {
            // Appended: the application's own Set-Cookie headers stay as they are.
            self.add_http_response_header("set-cookie", &cookie);
        }
        if let (Some(name), Some(value)) = (&config.session_header, session) {
            self.set_http_response_header(name, Some(&value));
        }
        if let (Some(name), Some(p)) = (&config.debug_header, config.pool(pool)) {
            let mut value = format!(
                "pool={}; reason={}",
                p.name,
                routed.decision.reason.as_str()
            );
            if let Some(moved) = moved.and_then(|d| config.pool(d.pool)) {
                value.push_str("; failover=");
                value.push_str(&moved.name);
            }
            self.set_http_response_header(name, Some(&value));
        }
    }

    /// Envoy's response flags (`response.flags`: a little-endian integer).
    fn response_flags(&self) -> u64 {
        self.get_property(vec!["response", "flags"])
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes)
    }
}

/// Makes Envoy match the route again now that the routing headers are set.
///
/// Envoy picks the route before the filter chain runs and drops that choice
/// when a filter of Proxy-Wasm ABI 0.2.1 or older changes request headers;
/// since envoyproxy/envoy#36671 (Envoy 1.33) it keeps it for newer ABIs
/// unless the filter calls this foreign function. This module's ABI is
/// 0.2.1, so the call is made only when the config asks for it; an Envoy
/// without the function answers NotFound.
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
