//! One HTTP stream's whole life, as data. [`Exchange`] owns what the stream
//! knows between Envoy's callbacks (its decision, whether it holds a pool's
//! probe, a gRPC call whose status is still to come) and answers each
//! callback with a plan:
//!
//! | callback            | reads                                   | plan                          |
//! |---------------------|-----------------------------------------|-------------------------------|
//! | request headers     | what the decision needs                 | [`RequestPlan`]               |
//! | response headers    | `:status`, flags, `grpc-status` (needs) | [`ResponsePlan`]              |
//! | response trailers   | `grpc-status`, for a pending gRPC call  | [`Concluded`]                 |
//! | end of stream (log) | flags, for a pending gRPC call          | [`Ended`]                     |
//!
//! A request that (re)assigns its user is counted with its response, not
//! before: if Envoy answers an error or redirect without asking any pool
//! (no route, a redirect route, another filter's denial), the user gets no
//! value and the pool counts nothing.
//! At the end, a gRPC call still waiting for its status is counted as one
//! that ended with none, a request never answered is counted, and a probe
//! that never saw response headers (a reset stream) is given back so that
//! another request may probe.

use std::rc::Rc;

use rand_core::Rng;

use super::{conclude, respond, route, Concluded, Counts, ResponsePlan, Routed, StreamHost};
use crate::config::Config;
use crate::health::Health;

/// What the stream knows. Made per stream with the configuration it
/// started with, which it keeps to its end even when a push replaces it.
#[derive(Debug)]
pub struct Exchange {
    config: Rc<Config>,
    /// The request's decision, from the request headers to the response's.
    routed: Option<Routed>,
    /// The pool whose probe this stream holds, until response headers come.
    probe: Option<usize>,
    /// The pool of a gRPC call whose `grpc-status` is still to come.
    pending_grpc: Option<usize>,
    /// The request counter of a (re)assigning request, until its response
    /// says whether a pool answered.
    deferred_count: Option<usize>,
}

/// What the end of a stream counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ended<'a> {
    pub counts: Counts,
    /// The name of the pool when a gRPC call's end ejected it.
    pub ejected: Option<&'a str>,
}

/// What to do with the request headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestPlan<'a> {
    /// Request headers to set, each replacing every copy the client sent:
    /// the routing header, and the cluster header when one is configured.
    pub set_headers: [Option<(&'a str, &'a str)>; 2],
    /// Make Envoy match the route again after the headers are set.
    pub clear_route_cache: bool,
    /// Stream properties to set (the exported decision).
    pub properties: [Option<(&'static str, &'a str)>; 2],
    /// The request counter to increment.
    pub count: Option<usize>,
}

impl<'a> RequestPlan<'a> {
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.set_headers.iter().flatten().copied()
    }

    pub fn properties(&self) -> impl Iterator<Item = (&'static str, &'a str)> + '_ {
        self.properties.iter().flatten().copied()
    }
}

impl Exchange {
    pub fn new(config: Rc<Config>) -> Exchange {
        Exchange {
            config,
            routed: None,
            probe: None,
            pending_grpc: None,
            deferred_count: None,
        }
    }

    /// The request headers: decide, and plan the headers, properties and
    /// count. `end_of_stream`: the headers end the request (no body).
    /// Without the VM's generator (`rng` is `None`: never expected in a
    /// single-threaded VM), the request passes untouched.
    pub fn on_request<S: StreamHost + ?Sized, R: Rng + ?Sized>(
        &mut self,
        host: &mut S,
        rng: Option<&mut R>,
        health: Option<&mut Health>,
        end_of_stream: bool,
    ) -> RequestPlan<'_> {
        let Some(rng) = rng else {
            return RequestPlan::default();
        };
        let routed = route(&self.config, host, rng, health, !end_of_stream);
        if routed.probe {
            self.probe = Some(routed.decision.pool);
        }
        let config = &*self.config;
        let count = Some(routed.counter());
        let (count, deferred) = if routed.decision.assigns() {
            (None, count)
        } else {
            (count, None)
        };
        self.deferred_count = deferred;
        let mut plan = RequestPlan {
            clear_route_cache: config.clear_route_cache,
            count,
            ..RequestPlan::default()
        };
        for (slot, header) in plan
            .set_headers
            .iter_mut()
            .zip(routed.request_headers(config))
        {
            *slot = Some(header);
        }
        for (slot, property) in plan.properties.iter_mut().zip(routed.exported(config)) {
            *slot = Some(property);
        }
        self.routed = Some(routed);
        plan
    }

    /// The response headers of a routed request: judge them and plan the
    /// cookie, session and debug headers and the counts. `None` for a
    /// request the filter did not route. Without the VM's generator, the
    /// plan carries the request's own headers and counts nothing.
    pub fn on_response<S: StreamHost + ?Sized, R: Rng + ?Sized>(
        &mut self,
        host: &mut S,
        rng: Option<&mut R>,
        health: Option<&mut Health>,
    ) -> Option<ResponsePlan<'_>> {
        // the probe is answered: `respond` records its outcome
        self.probe = None;
        let routed = self.routed.take()?;
        let pool = routed.decision.pool;
        let mut plan = match rng {
            Some(rng) => respond(&self.config, host, rng, health, routed),
            None => {
                // nothing judged: a probe learnt nothing, so another may probe
                if let (true, Some(h)) = (routed.probe, health) {
                    h.probe_abandoned(pool);
                }
                ResponsePlan::unjudged(&self.config, routed)
            }
        };
        if plan.pending {
            self.pending_grpc = Some(pool);
        }
        if let Some(slot) = self.deferred_count.take().filter(|_| !plan.unanswered) {
            plan.counts.add(slot);
        }
        Some(plan)
    }

    /// The response trailers: a pending gRPC call's status. Reads nothing
    /// for any other stream.
    pub fn on_trailers<S: StreamHost + ?Sized>(
        &mut self,
        host: &mut S,
        health: Option<&mut Health>,
    ) -> Option<Concluded<'_>> {
        let pool = self.pending_grpc.take()?;
        let status = host.response_trailer("grpc-status");
        Some(conclude(
            &self.config,
            host,
            health,
            pool,
            status.as_deref(),
        ))
    }

    /// The end of the stream: a gRPC call still pending ended without a
    /// status; a request never answered is counted; a probe that saw no
    /// response headers is given back. `None` when there is nothing to do.
    pub fn on_end<S: StreamHost + ?Sized>(
        &mut self,
        host: &mut S,
        mut health: Option<&mut Health>,
    ) -> Option<Ended<'_>> {
        if let (Some(pool), Some(h)) = (self.probe.take(), health.as_deref_mut()) {
            h.probe_abandoned(pool);
        }
        let deferred = self.deferred_count.take();
        let mut ended = match self.pending_grpc.take() {
            Some(pool) => {
                let done = conclude(&self.config, host, health, pool, None);
                Ended {
                    counts: done.counts,
                    ejected: done.ejected,
                }
            }
            None if deferred.is_some() => Ended::default(),
            None => return None,
        };
        if let Some(slot) = deferred {
            ended.counts.add(slot);
        }
        Some(ended)
    }
}
