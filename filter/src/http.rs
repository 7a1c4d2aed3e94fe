//! One HTTP stream: Envoy's callbacks handed to the core's [`Exchange`],
//! which reads through [`EnvoyStream`] what it needs and answers with a
//! plan; this file applies each plan as it is.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::{host, SharedHealth, SharedRng};
use sticky_split_core::config::Config;
use sticky_split_core::metrics::CounterBatch;
use sticky_split_core::request::Headers;
use sticky_split_core::stream::{Counts, Exchange, RequestPlan, ResponsePlan, StreamHost};

pub(super) struct HttpFilter {
    /// `None` while the plugin has no valid configuration: every callback
    /// passes the stream on untouched.
    exchange: Option<Exchange>,
    rng: Option<SharedRng>,
    health: Option<SharedHealth>,
    counters: Rc<CounterBatch>,
}

impl HttpFilter {
    pub(super) fn new(
        config: Option<Rc<Config>>,
        rng: Option<SharedRng>,
        health: Option<SharedHealth>,
        counters: Rc<CounterBatch>,
    ) -> Self {
        HttpFilter {
            exchange: config.map(Exchange::new),
            rng,
            health,
            counters,
        }
    }
}

/// The current stream as Envoy holds it, read on demand through `host`.
struct EnvoyStream;

impl StreamHost for EnvoyStream {
    fn request_header(&mut self, name: &str) -> Option<Vec<u8>> {
        host::request_header(name)
    }

    fn request_headers(&mut self) -> Headers {
        host::request_headers()
    }

    fn now(&mut self) -> u64 {
        host::now_seconds()
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        host::response_header(name)
    }

    fn response_trailer(&mut self, name: &str) -> Option<Vec<u8>> {
        host::response_trailer(name)
    }

    fn response_flags(&mut self) -> u64 {
        host::response_flags()
    }

    fn sent_upstream(&mut self) -> bool {
        host::property(&["upstream", "address"]).is_some()
    }
}

impl Context for HttpFilter {}

/// The VM's generator or pool health, borrowed for one callback. The borrow
/// cannot fail in a single-threaded VM; if it ever did, the core gets `None`
/// and plans without it.
fn borrowed<T>(shared: &Option<Rc<RefCell<T>>>) -> Option<RefMut<'_, T>> {
    shared.as_ref().and_then(|cell| cell.try_borrow_mut().ok())
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        let mut rng = borrowed(&self.rng);
        let mut health = borrowed(&self.health);
        let plan = exchange.on_request(
            &mut EnvoyStream,
            rng.as_deref_mut(),
            health.as_deref_mut(),
            end_of_stream,
        );
        apply_request(&plan, &self.counters);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Continue;
        };
        let mut rng = borrowed(&self.rng);
        let mut health = borrowed(&self.health);
        let plan =
            exchange.on_response(&mut EnvoyStream, rng.as_deref_mut(), health.as_deref_mut());
        if let Some(plan) = plan {
            apply_response(&plan, &self.counters);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(exchange) = self.exchange.as_mut() {
            let mut health = borrowed(&self.health);
            if let Some(done) = exchange.on_trailers(&mut EnvoyStream, health.as_deref_mut()) {
                apply_counts(&done.counts, done.ejected, &self.counters);
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(exchange) = self.exchange.as_mut() {
            let mut health = borrowed(&self.health);
            if let Some(done) = exchange.on_end(&mut EnvoyStream, health.as_deref_mut()) {
                apply_counts(&done.counts, done.ejected, &self.counters);
            }
        }
    }
}

fn apply_request(plan: &RequestPlan, counters: &CounterBatch) {
    for (name, value) in plan.headers() {
        host::set_request_header(name, value);
    }
    if plan.clear_route_cache {
        host::clear_route_cache();
    }
    for (path, value) in plan.properties() {
        host::set_property(path, value);
    }
    if let Some(slot) = plan.count {
        counters.count(slot);
    }
}

fn apply_response(plan: &ResponsePlan, counters: &CounterBatch) {
    apply_counts(&plan.counts, plan.ejected, counters);
    if let Some(cookie) = &plan.set_cookie {
        host::add_response_header("set-cookie", cookie);
    }
    for (name, value) in plan.session.iter().chain(&plan.debug) {
        host::set_response_header(name, value);
    }
}

fn apply_counts(counts: &Counts, ejected: Option<&str>, counters: &CounterBatch) {
    for slot in counts.iter() {
        counters.count(slot);
    }
    log_ejection(ejected);
}

fn log_ejection(pool: Option<&str>) {
    if let Some(pool) = pool {
        log::warn!("pool {pool} ejected after gateway-level failures");
    }
}
