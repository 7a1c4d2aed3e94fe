//! The response of a routed request: its class, what it does to the pool's
//! health, whether the user moves off a failing pool, and the plan the glue
//! applies as it is: which `Set-Cookie` wins, the session and debug headers,
//! and the counters to bump.

use rand_core::Rng;

use super::{issue, HeaderSource, Routed};
use crate::config::Config;
use crate::decide::{fail_over, moves_on_failure, Conditions, Decision};
use crate::health::{needs_flags, status_code, Change, Class, Health};
use crate::metrics::CounterLayout;
use crate::request::Request;

/// What to do with a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePlan<'a> {
    /// The response's class; `None` when neither the counters nor failover
    /// read responses.
    pub class: Option<Class>,
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
}

/// Up to three counter slots: the response's class, an ejection, a failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts([Option<usize>; 3]);

impl Counts {
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().flatten().copied()
    }
}

/// Judges the response to `routed` and plans what to write. Reads the
/// `:status` only when counters or failover need it, the response flags for
/// a 5xx only, and the request headers again only to move a user. An
/// unreadable `:status` is counted as a 5xx. `health`: the VM's pool health,
/// when failover is on.
pub fn respond<'a, S: HeaderSource + ?Sized, R: Rng + ?Sized>(
    config: &'a Config,
    source: &mut S,
    rng: &mut R,
    health: Option<&mut Health>,
    routed: Routed,
) -> ResponsePlan<'a> {
    if !config.reads_responses() {
        return plan(config, routed, Judged::default());
    }
    let status = status_code(source.status().as_deref());
    let flags = if needs_flags(status) {
        source.response_flags()
    } else {
        0
    };
    let judged = judge(
        config,
        source,
        rng,
        health,
        &routed,
        Class::of(status, flags),
    );
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
    class: Option<Class>,
    ejected: bool,
    /// The new decision, its Set-Cookie and session value.
    moved: Option<(Decision, Option<String>, Option<String>)>,
}

/// The class of the response, the pool's health, and for a gateway-level
/// failure the user's new pool.
fn judge<S: HeaderSource + ?Sized, R: Rng + ?Sized>(
    config: &Config,
    source: &mut S,
    rng: &mut R,
    health: Option<&mut Health>,
    routed: &Routed,
    class: Class,
) -> Judged {
    let mut out = Judged {
        class: Some(class),
        ..Judged::default()
    };
    let Some(health) = health else {
        return out;
    };
    let pool = routed.decision.pool;
    let failed = class == Class::Gateway;
    // the clock only for a failure: an ejection needs its start (a success,
    // a probe's included, needs no time)
    let now = if failed { source.now() } else { 0 };
    out.ejected = health.record(pool, failed, now) == Change::Ejected;
    if !failed || !moves_on_failure(config, &routed.decision) {
        return out;
    }
    let avoid = health.out_of_service(now);
    let cond = Conditions {
        now: Some(now),
        avoid: avoid.as_deref(),
    };
    let headers = source.all();
    let req = Request::new(&headers);
    if let Some(moved) = fail_over(config, &req, pool, cond, rng) {
        let (set_cookie, session) = issue(config, &moved, Some(now), || req.is_https());
        out.moved = Some((moved, set_cookie, session));
    }
    out
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
        counts.0[0] = judged.class.and_then(|c| layout.response(pool, c));
    }
    if judged.ejected {
        counts.0[1] = Some(layout.ejection(pool));
    }
    let (failed_over, set_cookie, session_value) = match judged.moved {
        Some((moved, set_cookie, session)) => {
            counts.0[2] = Some(layout.failover(pool));
            (Some(moved), set_cookie, session)
        }
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
        Some((header, value))
    });
    ResponsePlan {
        class: judged.class,
        failed_over,
        ejected: judged.ejected.then(|| name_of(pool)).flatten(),
        set_cookie,
        session: config.session_header.as_deref().zip(session_value),
        debug,
        counts,
    }
}
