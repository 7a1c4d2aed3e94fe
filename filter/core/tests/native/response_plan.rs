//! The response plan: what the glue writes and counts on a response, decided
//! by the core. Which Set-Cookie wins after a failover, the session value,
//! the debug text, which reads a response costs, and an unreadable status.

use rand_core::SeedableRng;
use sticky_split_core::config::Config;
use sticky_split_core::decide::Reason;
use sticky_split_core::health::Health;
use sticky_split_core::metrics::{slot, CounterLayout};
use sticky_split_core::outcome::Class;
use sticky_split_core::rng::Prng;
use sticky_split_core::stream::{respond, route, ResponsePlan, Routed};

use super::helpers::{config, headers};
use sticky_split_core::testing::FakeStream;

const UF: u64 = 0x20;

/// Two pools; failover ejects after one gateway-level failure; session and
/// debug headers on.
const TWO: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
    "cookie": {"name": "s", "secure": false}, "sessionHeader": "x-session",
    "debugHeader": "x-debug", "failover": {"ejectAfter": 1}}"#;

fn source(pairs: &[(&str, &[u8])]) -> FakeStream {
    FakeStream::new(headers(pairs))
}

fn routed(c: &Config, src: &mut FakeStream, h: Option<&mut Health>) -> Routed {
    route(c, src, &mut Prng::seed_from_u64(3), h, false)
}

/// The plan for the response (status, flags) to the request in `src`.
fn plan<'a>(
    c: &'a Config,
    src: &mut FakeStream,
    h: Option<&mut Health>,
    r: &Routed,
    status: u16,
    flags: u64,
) -> ResponsePlan<'a> {
    src.set_answer(status, flags);
    respond(c, src, &mut Prng::seed_from_u64(4), h, r.clone())
}

fn layout(c: &Config) -> CounterLayout {
    CounterLayout {
        pools: c.pools.len(),
    }
}

#[test]
fn a_new_user_gets_the_planned_cookie_session_value_and_debug_text() {
    let c = config(TWO);
    let mut h = c.health().unwrap();
    let mut src = source(&[]);
    let r = routed(&c, &mut src, Some(&mut h));
    assert_eq!(r.decision.reason, Reason::New);
    let pool = c.pools[r.decision.pool].name.clone();
    let out = plan(&c, &mut src, Some(&mut h), &r, 200, 0);
    assert_eq!(out.class, Some(Class::Success));
    assert_eq!(out.failed_over, None);
    assert_eq!(out.set_cookie, r.set_cookie);
    let value = r.session_value.clone().unwrap();
    assert_eq!(
        out.set_cookie.as_deref(),
        Some(format!("s={value}; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax").as_str())
    );
    assert_eq!(out.session, Some(("x-session", value)));
    assert_eq!(
        out.debug,
        Some(("x-debug", format!("pool={pool}; reason=new")))
    );
    let counts: Vec<usize> = out.counts.iter().collect();
    assert_eq!(
        counts,
        vec![layout(&c).response(r.decision.pool, Class::Success)]
    );
    // the request side: routing header replaced, its counter
    assert_eq!(
        r.request_headers(&c).collect::<Vec<_>>(),
        vec![("x-sticky-split-pool", pool.as_str())]
    );
    assert_eq!(r.counter(), slot(r.decision.pool, Reason::New));
}

#[test]
fn after_a_failover_the_new_value_wins_everywhere() {
    let c = config(TWO);
    // a new user whose first response fails at the gateway: the planned
    // cookie named the failing pool; the moved one replaces it
    let mut h = c.health().unwrap();
    let mut src = source(&[]);
    let r = routed(&c, &mut src, Some(&mut h));
    let (from, to) = (r.decision.pool, 1 - r.decision.pool);
    let out = plan(&c, &mut src, Some(&mut h), &r, 503, UF);
    assert_eq!(out.class, Some(Class::Gateway));
    let moved = out.failed_over.unwrap();
    assert_eq!((moved.pool, moved.reason), (to, Reason::Failover));
    let names = [c.pools[from].name.as_str(), c.pools[to].name.as_str()];
    let set_cookie = out.set_cookie.clone().unwrap();
    assert!(
        set_cookie.starts_with(&format!("s={};", names[1])),
        "{set_cookie}"
    );
    assert_ne!(Some(set_cookie), r.set_cookie);
    assert_eq!(out.session, Some(("x-session", names[1].to_string())));
    assert_eq!(
        out.debug,
        Some((
            "x-debug",
            format!("pool={}; reason=new; failover={}", names[0], names[1])
        ))
    );
    assert_eq!(out.ejected, Some(names[0]));
    let l = layout(&c);
    let counts: Vec<usize> = out.counts.iter().collect();
    assert_eq!(
        counts,
        vec![
            l.response(from, Class::Gateway),
            l.ejection(from),
            l.failover(from)
        ]
    );
    // a pinned user: no planned cookie, the moved one is written
    let mut h = c.health().unwrap();
    let mut src = source(&[("cookie", b"s=p2")]);
    let r = routed(&c, &mut src, Some(&mut h));
    assert_eq!(
        (r.decision.reason, r.set_cookie.clone()),
        (Reason::Sticky, None)
    );
    let out = plan(&c, &mut src, Some(&mut h), &r, 503, UF);
    assert!(out.set_cookie.unwrap().starts_with("s=p1;"));
    assert_eq!(out.session, Some(("x-session", "p1".to_string())));
}

#[test]
fn a_pinned_user_answered_normally_gets_no_cookie_and_no_session_value() {
    let c = config(TWO);
    let mut h = c.health().unwrap();
    let mut src = source(&[("cookie", b"s=p1")]);
    let r = routed(&c, &mut src, Some(&mut h));
    let out = plan(&c, &mut src, Some(&mut h), &r, 302, 0);
    assert_eq!(out.class, Some(Class::Redirection));
    assert_eq!((out.set_cookie, out.session), (None, None));
    assert_eq!(
        out.debug,
        Some(("x-debug", "pool=p1; reason=sticky".to_string()))
    );
}

#[test]
fn a_response_reads_the_status_and_for_a_5xx_only_the_flags() {
    let c = config(TWO);
    // (status, flags read)
    for (status, flag_reads) in [(200, 0), (404, 0), (499, 0), (500, 1), (503, 1)] {
        let mut h = c.health().unwrap();
        let mut src = source(&[("cookie", b"s=p1")]);
        let r = routed(&c, &mut src, Some(&mut h));
        plan(&c, &mut src, Some(&mut h), &r, status, 0);
        assert_eq!(
            (src.status_reads, src.flag_reads),
            (1, flag_reads),
            "{status}"
        );
    }
    // neither counters nor failover: the response is not read at all
    let quiet = config(
        r#"{"pools": [{"name": "p1", "weight": 1}], "cookie": {"name": "s"},
            "responseCounters": false, "failover": {"enabled": false}}"#,
    );
    let mut src = source(&[]);
    let r = routed(&quiet, &mut src, None);
    let out = plan(&quiet, &mut src, None, &r, 503, UF);
    assert_eq!((src.status_reads, src.flag_reads), (0, 0));
    assert_eq!(out.class, None);
    assert_eq!(out.counts.iter().count(), 0);
    assert_eq!(out.set_cookie, r.set_cookie);
}

#[test]
fn an_unreadable_status_is_counted_as_a_5xx_without_reading_flags() {
    let c = config(TWO);
    let statuses: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"abc"), Some(b"99999")];
    for status in statuses {
        let mut h = c.health().unwrap();
        let mut src = source(&[("cookie", b"s=p1")]);
        let r = routed(&c, &mut src, Some(&mut h));
        src.status = status.map(<[u8]>::to_vec);
        src.flags = UF;
        let out = respond(&c, &mut src, &mut Prng::seed_from_u64(1), Some(&mut h), r);
        assert_eq!(out.class, Some(Class::ServerError), "{status:?}");
        assert_eq!((out.failed_over, src.flag_reads), (None, 0), "{status:?}");
    }
}

#[test]
fn counters_off_still_feed_failover() {
    let c = config(
        r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
            "cookie": {"name": "s"}, "responseCounters": false, "failover": {"ejectAfter": 1}}"#,
    );
    let mut h = c.health().unwrap();
    let mut src = source(&[("cookie", b"s=p1")]);
    let r = routed(&c, &mut src, Some(&mut h));
    let out = plan(&c, &mut src, Some(&mut h), &r, 503, UF);
    let l = layout(&c);
    assert_eq!(
        out.counts.iter().collect::<Vec<_>>(),
        vec![l.ejection(0), l.failover(0)]
    );
    assert_eq!(out.debug, None);
}

#[test]
fn the_unjudged_plan_keeps_the_planned_headers_and_counts_nothing() {
    let c = config(TWO);
    let mut src = source(&[]);
    let r = routed(&c, &mut src, None);
    let out = ResponsePlan::unjudged(&c, r.clone());
    assert_eq!(out.set_cookie, r.set_cookie);
    assert_eq!(out.session.map(|(_, v)| v), r.session_value);
    assert_eq!((out.class, out.counts.iter().count()), (None, 0));
    assert!(out.debug.is_some());
}

#[test]
fn an_exported_decision_names_the_pool_and_the_reason() {
    let exporting = config(
        r#"{"pools": [{"name": "p1", "weight": 1}], "cookie": {"name": "s"}, "exportDecision": true}"#,
    );
    let mut src = source(&[("cookie", b"s=p1")]);
    let r = routed(&exporting, &mut src, None);
    assert_eq!(
        r.exported(&exporting).collect::<Vec<_>>(),
        vec![
            ("sticky_split.pool", "p1"),
            ("sticky_split.reason", "sticky")
        ]
    );
    let quiet = config(r#"{"pools": [{"name": "p1", "weight": 1}], "cookie": {"name": "s"}}"#);
    let r = routed(&quiet, &mut source(&[]), None);
    assert_eq!(r.exported(&quiet).count(), 0);
}
