//! One HTTP stream: answers the core's reads from Envoy, applies its
//! decision to the request, and on the response counts the outcome, feeds
//! the pool's health, and adds the cookie, session and debug headers.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, Status};

use super::{host, SharedHealth, SharedRng};
use crate::config::Config;
use crate::health::Health;
use crate::metrics::CounterBatch;
use crate::request::Headers;
use crate::rng::Prng;
use crate::stream::{conclude, respond, route, HeaderSource, ResponsePlan, Routed};

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
    /// Whether the request has a body (its headers did not end the stream).
    request_has_body: bool,
    /// The pool of a gRPC call whose status is still to come.
    pending: Option<usize>,
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
            request_has_body: false,
            pending: None,
        }
    }
}

/// The current stream's headers, its response flags and the clock, read
/// from Envoy on demand.
struct Host {
    request_has_body: bool,
}

impl HeaderSource for Host {
    fn first(&mut self, name: &str) -> Option<Vec<u8>> {
        host::request_header(name)
    }

    fn all(&mut self) -> Headers {
        host::request_headers()
    }

    fn now(&mut self) -> u64 {
        host::now_seconds()
    }

    fn has_body(&mut self) -> bool {
        self.request_has_body
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        host::response_header(name)
    }

    /// `response.flags` is a little-endian integer.
    fn response_flags(&mut self) -> u64 {
        host::property(&["response", "flags"])
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes)
    }
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.request_has_body = !end_of_stream;
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
        let pool = routed.decision.pool;
        // the decision moves into the plan; kept here only for the case the
        // VM's state cannot be borrowed
        let mut routed = Some(routed);
        let plan = self
            .with_state(|host, rng, health| {
                let routed = routed.take()?;
                Some(respond(&config, host, rng, health, routed))
            })
            .flatten()
            .or_else(|| Some(ResponsePlan::unjudged(&config, routed.take()?)));
        if let Some(plan) = plan {
            if plan.pending {
                self.pending = Some(pool);
            }
            self.apply_response(plan);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        // read only for a gRPC call that is waiting for its status
        if self.pending.is_some() {
            let status = host::response_trailer("grpc-status");
            self.conclude(status.as_deref());
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        // a gRPC call that ended without its status: a reset stream
        if self.pending.is_some() {
            self.conclude(None);
        }
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
        let mut host = Host {
            request_has_body: self.request_has_body,
        };
        Some(f(&mut host, &mut rng, health.as_deref_mut()))
    }

    /// Counts a pending gRPC call's outcome, from the trailers' `grpc-status`
    /// or, without one, as a failure.
    fn conclude(&mut self, grpc_status: Option<&[u8]>) {
        let (Some(config), Some(pool)) = (self.config.clone(), self.pending.take()) else {
            return;
        };
        let done =
            self.with_state(|host, _, health| conclude(&config, host, health, pool, grpc_status));
        let Some(done) = done else { return };
        for slot in done.counts.iter() {
            self.counters.count(slot);
        }
        log_ejection(done.ejected);
    }

    fn apply(&mut self, config: &Config, routed: &Routed) {
        for (name, value) in routed.request_headers(config) {
            host::set_request_header(name, value);
        }
        if config.clear_route_cache {
            clear_route_cache();
        }
        for (path, value) in routed.exported(config) {
            host::set_property(path, value);
        }
        self.counters.count(routed.counter());
    }

    fn apply_response(&mut self, plan: ResponsePlan) {
        for slot in plan.counts.iter() {
            self.counters.count(slot);
        }
        log_ejection(plan.ejected);
        if let Some(cookie) = &plan.set_cookie {
            host::add_response_header("set-cookie", cookie);
        }
        for (name, value) in plan.session.iter().chain(&plan.debug) {
            host::set_response_header(name, value);
        }
    }
}

fn log_ejection(pool: Option<&str>) {
    if let Some(pool) = pool {
        log::warn!("pool {pool} ejected after gateway-level failures");
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
            log::warn!("clear_route_cache failed: {status:?}");
        }
    }
}
