//! The response of a routed request: its class, what it does to the pool's
//! health, whether the user moves off a failing pool, and the plan the glue
//! applies as it is: which `Set-Cookie` wins, the session and debug headers,
//! and the counters to bump. A gRPC call's outcome may come later, in the
//! trailers or with the end of the stream: [`conclude`] counts it then.

use rand_core::Rng;

use super::route::issue;
use super::{Routed, StreamHost};
use crate::config::Config;
use crate::decide::{fail_over, moves_on_failure, Conditions, Decision};
use crate::health::{Change, Health, State};
use crate::metrics::CounterLayout;
use crate::outcome::{header_number, needs_flags, status_code, Class, Failure};
use crate::request::{Protocol, Request};

/// What to do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePlan<'a> {
    /// The response's class; `None` when neither the counters nor failover
    /// read responses, when a gRPC call's status is still to come
    /// (`pending`), or when no pool answered (`unanswered`).
    pub class: Option<Class>,
    /// A gRPC call whose `grpc-status` comes in the trailers: pass it to
    /// [`conclude`] then, or with `None` if the stream ends without them.
    pub pending: bool,
    /// The user's new decision when this response moved them off a failing
    /// pool.
    pub failed_over: Option<Decision>,
    /// The name of the chosen pool when this response ejected it.
    pub ejected: Option<&'a str>,
    /// Appended as a `Set-Cookie` header: the application's own stay.
    pub set_cookie: Option<String>,
    /// (name, value) of the session header to set.
    pub session: Option<(&'a str, String)>,
    /// (name, value) of the debug header to set.
    pub debug: Option<(&'a str, String)>,
    /// Counter slots to increment by one each.
    pub counts: Counts,
    /// Envoy answered an error or redirect without asking any pool, so the
    /// user (re)assigned by the request gets no value and nothing is counted
    /// for the pool (a 1xx or 2xx is taken for the pool's, unasked).
    pub unanswered: bool,
}

/// Up to four counter slots: the response's class, an ejection, a
/// failover, and the request's own count when it waited for the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts([Option<usize>; 4]);

impl Counts {
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().flatten().copied()
    }

    /// One more slot, in the last free place (a plan leaves the fourth free).
    pub(crate) fn add(&mut self, slot: usize) {
        if let Some(free) = self.0.iter_mut().rev().find(|s| s.is_none()) {
            *free = Some(slot);
        }
    }
}

/// Judges the response to `routed` and plans what to write. Reads the
/// `:status` only when counters or failover need it, a gRPC call's
/// `grpc-status` header, the response flags for a 5xx or a gRPC error,
/// whether a pool answered only for an error or redirect to a (re)assigned
/// user, and the request headers again only to move a user. An unreadable `:status` is counted as
/// a 5xx. `health`: the VM's pool health, when failover is on.
pub fn respond<'a, S: StreamHost + ?Sized, R: Rng + ?Sized>(
    config: &'a Config,
    source: &mut S,
    rng: &mut R,
    health: Option<&mut Health>,
    routed: Routed,
) -> ResponsePlan<'a> {
    if !config.reads_responses() {
        return plan(config, routed, Judged::default());
    }
    let status = status_code(source.response_header(":status").as_deref());
    // Envoy's own replies are errors or redirects (no route 404, a
    // rejected CONNECT, a redirect route, another filter's denial; for gRPC
    // an error status): only these may not be a pool's answer. A 1xx or 2xx
    // is taken for the pool's, which spares a host call per new user; a
    // `direct_response` 2xx is the exception, documented.
    let mut maybe_envoys = !(100..300).contains(&status);
    let (class, flags) = match routed.protocol {
        Protocol::Http => {
            let flags = if needs_flags(status) {
                source.response_flags()
            } else {
                0
            };
            (Some(Class::of(status, flags)), flags)
        }
        Protocol::Grpc | Protocol::GrpcWeb => {
            let code = header_number(source.response_header("grpc-status").as_deref());
            maybe_envoys |= code.is_some_and(|c: u32| c != 0);
            // Envoy's own failure replies to a gRPC call are trailers-only
            // with an error status (HTTP 200): only an error, or a 5xx,
            // needs the flags; a call going well reads none
            let flags = match code {
                Some(0) => 0,
                Some(_) => source.response_flags(),
                None if needs_flags(status) => source.response_flags(),
                None => 0,
            };
            let class = match code {
                // a trailers-only response
                Some(code) => Some(Class::of_grpc(Some(code), flags)),
                // not a gRPC answer at all (the client maps the HTTP status),
                // or gRPC-Web, whose status travels in the body: the HTTP
                // status is all the filter sees
                None if status != 200 || routed.protocol == Protocol::GrpcWeb => {
                    Some(Class::of(status, flags))
                }
                // the status comes in the trailers
                None => None,
            };
            (class, flags)
        }
    };
    let judged = match class {
        // a (re)assigned user is told their pool only if the pool answered:
        // asked only then (a host call), and never of a gateway-level
        // failure, which is the pool's and fails over as ever
        Some(class)
            if class != Class::Gateway
                && maybe_envoys
                && routed.decision.assigns()
                && !source.sent_upstream() =>
        {
            // no pool answered: a probe learnt nothing, so another may probe
            if let (true, Some(h)) = (routed.probe, health) {
                h.probe_abandoned(routed.decision.pool);
            }
            Judged {
                unanswered: true,
                ..Judged::default()
            }
        }
        Some(class) => judge(config, source, rng, health, &routed, class, flags),
        None => {
            // the pool answered: that is what its health needs to know now
            // (a probe ends here); the class waits for the trailers
            if let Some(h) = health {
                h.record(routed.decision.pool, false, 0);
            }
            Judged {
                pending: true,
                ..Judged::default()
            }
        }
    };
    plan(config, routed, judged)
}

impl<'a> ResponsePlan<'a> {
    /// The plan made without looking at the response: the request's own
    /// Set-Cookie, session and debug headers, nothing counted. For a glue
    /// that cannot reach the VM's state (never expected; still, the user gets
    /// their cookie).
    pub fn unjudged(config: &'a Config, routed: Routed) -> ResponsePlan<'a> {
        plan(config, routed, Judged::default())
    }
}

/// What the response said and did.
#[derive(Debug, Default)]
struct Judged {
    /// Envoy answered without asking any pool (nothing else is set then).
    unanswered: bool,
    class: Option<Class>,
    pending: bool,
    ejected: bool,
    /// The new decision, its Set-Cookie and session value.
    moved: Option<(Decision, Option<String>, Option<String>)>,
}

/// The pool's health after a response of this class, and for a failure
/// that moves users the user's new pool.
fn judge<S: StreamHost + ?Sized, R: Rng + ?Sized>(
    config: &Config,
    source: &mut S,
    rng: &mut R,
    health: Option<&mut Health>,
    routed: &Routed,
    class: Class,
    flags: u64,
) -> Judged {
    let mut out = Judged {
        class: Some(class),
        ..Judged::default()
    };
    let Some(health) = health else {
        return out;
    };
    let pool = routed.decision.pool;
    let Some((now, failure)) = record(
        source,
        health,
        pool,
        class,
        flags,
        routed.probe,
        &mut out.ejected,
    ) else {
        return out;
    };
    let moves = match failure {
        Failure::Unreachable => true,
        Failure::Reset => reset_moves(health.state(pool)),
        Failure::Overflow => false,
    };
    if !moves || !moves_on_failure(config, &routed.decision) {
        return out;
    }
    // never onto a half-open pool: it may still be dead, and a second
    // failure for this user would be the probe's
    let avoid = health.not_for_failover(now);
    let cond = Conditions {
        now: Some(now),
        avoid: avoid.as_deref(),
    };
    let headers = source.request_headers();
    let req = Request::new(&headers);
    if let Some(moved) = fail_over(config, &req, pool, cond, rng) {
        let (set_cookie, session) = issue(config, &moved, Some(now), || req.is_https());
        out.moved = Some((moved, set_cookie, session));
    }
    out
}

/// Whether a reset (UR, UC) moves its user, given the pool's health once
/// the reset is counted. One cut connection is routine and moves nobody; a
/// reset that follows another gateway-level failure of the pool, with no
/// answer from it in between, is a pool dying under its requests (the
/// requests in flight when it went are cut, then connections are refused),
/// so it moves the user at once, as an ejected pool's reset does. Only the
/// first failure of such a run leaves its user pinned.
fn reset_moves(state: Option<State>) -> bool {
    match state {
        Some(State::Open { .. }) => true,
        Some(State::Closed { failures }) => failures >= 2,
        _ => false,
    }
}

/// Feeds the pool's health with a response of this class: a gateway-level
/// failure other than an overflow counts toward ejection, anything else but
/// an overflow is a success. Returns the time and the failure, if it was one;
/// sets `ejected` when this response ejected the pool.
fn record<S: StreamHost + ?Sized>(
    source: &mut S,
    health: &mut Health,
    pool: usize,
    class: Class,
    flags: u64,
    holds_probe: bool,
    ejected: &mut bool,
) -> Option<(u64, Failure)> {
    let failure = (class == Class::Gateway)
        .then(|| Failure::of(flags))
        .flatten();
    match failure {
        // an overflow says the pool is busy, nothing about whether it is up;
        // a probe it shed tells nothing either, so another may probe (only
        // the stream holding the probe gives it back)
        Some(Failure::Overflow) => {
            if holds_probe {
                health.probe_abandoned(pool);
            }
            None
        }
        Some(failure) => {
            // the clock only for a failure: an ejection needs its start
            let now = source.now();
            *ejected = health.record(pool, true, now) == Change::Ejected;
            Some((now, failure))
        }
        None => {
            // a success, a probe's included, needs no time
            *ejected = health.record(pool, false, 0) == Change::Ejected;
            None
        }
    }
}

/// The outcome of a gRPC call whose status came after its response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concluded<'a> {
    pub class: Class,
    /// The name of the pool when this outcome ejected it.
    pub ejected: Option<&'a str>,
    pub counts: Counts,
}

/// Concludes a pending gRPC call to `pool`: `grpc_status` is the trailers'
/// `grpc-status`, `None` when the stream ended without one (a reset stream,
/// counted as a failure: as a gateway-level one when Envoy's flags say it
/// cut the stream). The user cannot move now: their headers are gone.
pub fn conclude<'a, S: StreamHost + ?Sized>(
    config: &'a Config,
    source: &mut S,
    health: Option<&mut Health>,
    pool: usize,
    grpc_status: Option<&[u8]>,
) -> Concluded<'a> {
    let code = header_number(grpc_status);
    let flags = if code.is_none() {
        source.response_flags()
    } else {
        0
    };
    let class = Class::of_grpc(code, flags);
    let mut ejected = false;
    if let Some(health) = health {
        // a call concluded after its headers holds no probe any more
        record(source, health, pool, class, flags, false, &mut ejected);
    }
    let layout = CounterLayout {
        pools: config.pools.len(),
    };
    let mut counts = Counts::default();
    if config.response_counters {
        counts.0[0] = Some(layout.response(pool, class));
    }
    if ejected {
        counts.0[1] = Some(layout.ejection(pool));
    }
    Concluded {
        class,
        ejected: ejected
            .then(|| config.pool(pool).map(|p| p.name.as_str()))
            .flatten(),
        counts,
    }
}

/// The headers and counts: a moved user's new value replaces the planned
/// one; the debug header names the pool, the reason and where the user
/// moved.
fn plan(config: &Config, routed: Routed, judged: Judged) -> ResponsePlan<'_> {
    let pool = routed.decision.pool;
    let name_of = |i: usize| config.pool(i).map(|p| p.name.as_str());
    let layout = CounterLayout {
        pools: config.pools.len(),
    };
    let mut counts = Counts::default();
    if config.response_counters {
        counts.0[0] = judged.class.map(|c| layout.response(pool, c));
    }
    if judged.ejected {
        counts.0[1] = Some(layout.ejection(pool));
    }
    let (failed_over, set_cookie, session_value) = match judged.moved {
        Some((moved, set_cookie, session)) => {
            counts.0[2] = Some(layout.failover(pool));
            (Some(moved), set_cookie, session)
        }
        None if judged.unanswered => (None, None, None),
        None => (None, routed.set_cookie, routed.session_value),
    };
    let debug = config.debug_header.as_deref().and_then(|header| {
        let mut value = format!(
            "pool={}; reason={}",
            name_of(pool)?,
            routed.decision.reason.as_str()
        );
        if let Some(moved) = failed_over.and_then(|d| name_of(d.pool)) {
            value.push_str("; failover=");
            value.push_str(moved);
        }
        if judged.unanswered {
            value.push_str("; answered-by=envoy");
        }
        Some((header, value))
    });
    ResponsePlan {
        class: judged.class,
        pending: judged.pending,
        failed_over,
        ejected: judged.ejected.then(|| name_of(pool)).flatten(),
        set_cookie,
        session: config.session_header.as_deref().zip(session_value),
        debug,
        counts,
        unanswered: judged.unanswered,
    }
}
