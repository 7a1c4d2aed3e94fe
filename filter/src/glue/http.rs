//! One HTTP stream: answers the core's header reads from Envoy, applies its
//! decision to the request, and adds the cookie and debug header to the
//! response.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, Status};

use super::SharedRng;
use crate::config::Config;
use crate::decide::fetch::{route, HeaderSource, Routed};
use crate::metrics::{self, CounterBatch};
use crate::request::Headers;

pub(super) struct HttpFilter {
    config: Option<Rc<Config>>,
    rng: Option<SharedRng>,
    counters: Rc<CounterBatch>,
    /// The Set-Cookie value to append to the response, when (re)assigned.
    set_cookie: Option<String>,
    /// (header, value) of the debug header, when configured.
    debug: Option<(String, String)>,
}

impl HttpFilter {
    pub(super) fn new(
        config: Option<Rc<Config>>,
        rng: Option<SharedRng>,
        counters: Rc<CounterBatch>,
    ) -> Self {
        HttpFilter {
            config,
            rng,
            counters,
            set_cookie: None,
            debug: None,
        }
    }
}

/// The request headers of the current stream, read from Envoy on demand.
struct HostHeaders<'a>(&'a HttpFilter);

impl HeaderSource for HostHeaders<'_> {
    fn first(&mut self, name: &str) -> Option<Vec<u8>> {
        self.0.get_http_request_header_bytes(name)
    }

    fn all(&mut self) -> Headers {
        self.0.get_http_request_headers_bytes()
    }
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
        let routed = route(&config, &mut HostHeaders(self), &mut *rng);
        drop(rng);
        self.apply(&config, routed);
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
    fn apply(&mut self, config: &Config, routed: Routed) {
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
        clear_route_cache();
        self.set_cookie = routed.set_cookie;
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
