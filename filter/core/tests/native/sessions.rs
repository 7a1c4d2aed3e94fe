//! Sessions that survive failure and expire on the server: pool health and
//! failover, absolute and idle timeouts with renewal, the session header.

use rand_core::SeedableRng;
use sticky_split_core::config::Config;
use sticky_split_core::cookie::{Payload, Verdict};
use sticky_split_core::decide::Reason;
use sticky_split_core::health::{Change, Health, State};
use sticky_split_core::outcome::Class;
use sticky_split_core::request::Headers;
use sticky_split_core::rng::Prng;
use sticky_split_core::stream::{respond, route, ResponsePlan, Routed};

use super::helpers::{assert_fits, config, headers};
use sticky_split_core::testing::FakeStream;

const NOW: u64 = 1_800_000_000;
const UF: u64 = 0x20;

fn source(pairs: &[(&str, &[u8])], now: u64) -> FakeStream {
    let mut s = FakeStream::new(headers(pairs));
    s.now = now;
    s
}

/// The value of the affinity cookie a Set-Cookie header sets.
pub(super) fn value_of(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap()
}

#[test]
fn health_ejects_after_consecutive_failures_and_probes_once() {
    let mut h = Health::new(vec![1, 1, 0], 3, 30);
    assert!(h.all_closed());
    assert_eq!(h.out_of_service(NOW), None);
    // failures interrupted by a success do not add up
    for failed in [true, true, false, true, true] {
        assert_eq!(h.record(0, failed, NOW), Change::None);
    }
    assert_eq!(h.record(0, true, NOW), Change::Ejected);
    assert_eq!(h.state(0), Some(State::Open { until: NOW + 30 }));
    // out through second NOW + 30: at least ejectSeconds after any point of
    // second NOW
    assert_eq!(h.out_of_service(NOW + 30), Some(vec![true, false, false]));
    // the last pool with weight is never ejected
    for _ in 0..10 {
        assert_eq!(h.record(1, true, NOW), Change::None);
    }
    assert_eq!(h.state(1), Some(State::Closed { failures: 10 }));
    // responses to requests sent before the ejection change nothing
    assert_eq!(h.record(0, false, NOW + 1), Change::None);
    assert!(matches!(h.state(0), Some(State::Open { .. })));
    // after ejectSeconds: half-open; one request probes, the others keep away
    assert_eq!(h.out_of_service(NOW + 31), Some(vec![false, false, false]));
    assert!(h.claim_probe(0, NOW + 31));
    assert!(!h.claim_probe(0, NOW + 31));
    assert_eq!(h.out_of_service(NOW + 32), Some(vec![true, false, false]));
    // an abandoned probe lets another request probe
    h.probe_abandoned(0);
    assert!(h.claim_probe(0, NOW + 32));
    // a failed probe ejects again; a good one restores the pool
    assert_eq!(h.record(0, true, NOW + 32), Change::Ejected);
    assert_eq!(h.state(0), Some(State::Open { until: NOW + 62 }));
    h.out_of_service(NOW + 63);
    assert!(h.claim_probe(0, NOW + 63));
    h.record(1, false, NOW + 63);
    assert_eq!(h.record(0, false, NOW + 63), Change::Restored);
    assert!(h.all_closed());
}

#[test]
fn an_ejection_never_lasts_less_than_eject_seconds() {
    // the clock is read in whole seconds (floored): an ejection starting at
    // any tenth of a second lasts more than ejectSeconds, and at most one
    // second more
    for eject_seconds in [1u32, 2, 4] {
        for tenth in 0..10u64 {
            let start = NOW * 10 + tenth;
            let mut h = Health::new(vec![1, 1], 1, eject_seconds);
            assert_eq!(h.record(0, true, start / 10), Change::Ejected);
            let end = (start..)
                .find(|t| h.out_of_service(t / 10).is_some_and(|out| !out[0]))
                .unwrap();
            let lasted = end - start;
            let e = u64::from(eject_seconds) * 10;
            assert!(
                (e + 1..=e + 10).contains(&lasted),
                "ejectSeconds {eject_seconds}, start at .{tenth}: lasted {lasted} tenths"
            );
        }
    }
}

#[test]
fn a_user_failing_over_never_lands_on_a_half_open_pool() {
    // p1 takes few new users, p2 many but it is half-open (its ejection is
    // over, no probe answered yet), p3 fails under its pinned users: they
    // all go to p1, whatever the draw
    let c = Config::from_json(
        br#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 99},
        {"name": "p3", "weight": 0}], "cookie": {"name": "s"},
        "failover": {"ejectAfter": 1, "ejectSeconds": 1}}"#,
    )
    .unwrap();
    for seed in 0..200 {
        let mut h = c.health().unwrap();
        assert_eq!(h.record(1, true, NOW), Change::Ejected);
        assert_eq!(h.out_of_service(NOW + 2), Some(vec![false, false, false]));
        let mut src = source(&[("cookie", b"s=p3")], NOW + 2);
        let r = route(
            &c,
            &mut src,
            &mut Prng::seed_from_u64(seed),
            Some(&mut h),
            false,
        );
        assert_eq!(r.decision.pool, 2);
        src.set_answer(503, UF);
        let out = respond(
            &c,
            &mut src,
            &mut Prng::seed_from_u64(seed),
            Some(&mut h),
            r,
        );
        assert_eq!(out.failed_over.map(|d| d.pool), Some(0), "seed {seed}");
        // p2's probe is still to come
        assert_eq!(h.state(1), Some(State::HalfOpen { probing: false }));
    }
}

const THREE: &str = r#"{"pools": [{"name": "p1", "weight": 50}, {"name": "p2", "weight": 30},
    {"name": "p3", "weight": 20}], "cookie": {"name": "s"}, "failover": {"ejectAfter": 2, "ejectSeconds": 10}}"#;

/// A health state with pool `pool` ejected at NOW.
fn ejected(c: &Config, pool: usize) -> Health {
    let mut h = c.health().unwrap();
    while h.record(pool, true, NOW) != Change::Ejected {}
    h
}

#[test]
fn new_users_avoid_an_ejected_pool_in_proportion_to_the_rest() {
    let c = config(THREE);
    let mut h = ejected(&c, 0);
    let mut rng = Prng::seed_from_u64(5);
    let mut counts = [0u64; 3];
    for _ in 0..30_000 {
        let routed = route(&c, &mut source(&[], NOW + 1), &mut rng, Some(&mut h), false);
        assert_eq!(routed.decision.reason, Reason::New);
        counts[routed.decision.pool] += 1;
    }
    assert_fits(&counts, &[0, 30, 20], "new users with p1 ejected");
}

#[test]
fn users_pinned_to_an_ejected_pool_move_on_their_next_request() {
    let c = config(THREE);
    let mut h = ejected(&c, 1);
    let mut rng = Prng::seed_from_u64(6);
    let routed = route(
        &c,
        &mut source(&[("cookie", b"s=p2")], NOW + 1),
        &mut rng,
        Some(&mut h),
        false,
    );
    assert_eq!(routed.decision.reason, Reason::Failover);
    assert_ne!(routed.decision.pool, 1);
    let value = value_of(routed.set_cookie.as_deref().unwrap());
    assert_eq!(c.pool_by_name(value.as_bytes()), Some(routed.decision.pool));
    // pinned elsewhere: untouched
    let routed = route(
        &c,
        &mut source(&[("cookie", b"s=p3")], NOW + 1),
        &mut rng,
        Some(&mut h),
        false,
    );
    assert_eq!(
        (routed.decision.pool, routed.decision.reason),
        (2, Reason::Sticky)
    );
    assert_eq!(routed.set_cookie, None);
}

#[test]
fn hash_and_ramp_users_of_an_ejected_pool_go_elsewhere_and_come_back() {
    let ramp = config(
        r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}, {"name": "p3", "weight": 1}],
            "cookie": {"name": "s"}, "affinity": "ramp", "hashOn": {"header": "x-user"}}"#,
    );
    let mut rng = Prng::seed_from_u64(7);
    let mut moved = 0;
    for i in 0..300u64 {
        let key = format!("s=@{}", ramp_key(&ramp, i));
        let user = format!("u{i}");
        for pairs in [
            vec![("cookie", key.as_bytes())],
            vec![("x-user", user.as_bytes())],
        ] {
            let before = route(&ramp, &mut source(&pairs, NOW), &mut rng, None, false).decision;
            let mut h = ejected(&ramp, before.pool);
            let during = route(
                &ramp,
                &mut source(&pairs, NOW + 1),
                &mut rng,
                Some(&mut h),
                false,
            )
            .decision;
            assert_ne!(during.pool, before.pool);
            assert_eq!(during.cookie, None, "the key is kept");
            // deterministic while ejected, and back once the pool is
            let again = route(
                &ramp,
                &mut source(&pairs, NOW + 2),
                &mut rng,
                Some(&mut h),
                false,
            )
            .decision;
            assert_eq!(again.pool, during.pool);
            let healthy = route(&ramp, &mut source(&pairs, NOW), &mut rng, None, false).decision;
            assert_eq!(healthy.pool, before.pool);
            moved += 1;
        }
    }
    assert_eq!(moved, 600);
}

/// A ramp key (base64url of `i`) that `c` reads as valid.
fn ramp_key(c: &Config, i: u64) -> String {
    let v = c
        .encode_cookie(Payload::RampKey(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .unwrap();
    v.trim_start_matches('@').to_string()
}

/// The response to `r` with this status and response flags, failover on.
fn answer<'a>(
    c: &'a Config,
    src: &mut FakeStream,
    h: &mut Health,
    r: &Routed,
    status: u16,
    flags: u64,
) -> ResponsePlan<'a> {
    src.set_answer(status, flags);
    respond(c, src, &mut Prng::seed_from_u64(9), Some(h), r.clone())
}

fn routed(c: &Config, pairs: &[(&str, &[u8])], h: Option<&mut Health>) -> Routed {
    route(
        c,
        &mut source(pairs, NOW),
        &mut Prng::seed_from_u64(8),
        h,
        false,
    )
}

#[test]
fn a_gateway_failure_moves_a_pinned_user_on_that_response() {
    let c = config(THREE);
    let mut h = c.health().unwrap();
    let pairs: &[(&str, &[u8])] = &[("cookie", b"a=1; s=p2")];
    let r = routed(&c, pairs, Some(&mut h));
    assert_eq!(r.decision.reason, Reason::Sticky);
    let mut src = source(pairs, NOW);
    let out = answer(&c, &mut src, &mut h, &r, 503, UF);
    assert_eq!(out.class, Some(Class::Gateway));
    let moved = out.failed_over.unwrap();
    assert_eq!(moved.reason, Reason::Failover);
    assert_ne!(moved.pool, 1);
    let value = value_of(out.set_cookie.as_deref().unwrap());
    assert_eq!(
        c.decode_cookie(value.as_bytes()),
        Verdict::Valid(Payload::Pool(moved.pool))
    );
    assert!(out.ejected.is_none(), "one failure of two");
    assert_eq!(
        answer(&c, &mut src, &mut h, &r, 503, UF).ejected,
        Some("p2")
    );
}

/// (case, request headers, status, Envoy's response flags, class)
type OutcomeCase<'a> = (&'a str, &'a [(&'a str, &'a [u8])], u16, u64, Class);

#[test]
fn what_does_not_move_a_user() {
    let c = config(
        r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}, {"name": "beta", "weight": 0}],
            "cookie": {"name": "s"}, "rules": [{"match": {"headers": [{"name": "x-beta", "present": true}]}, "pool": "beta"}]}"#,
    );
    let cases: &[OutcomeCase] = &[
        (
            "the application's own 503",
            &[("cookie", b"s=p1")],
            503,
            0,
            Class::ServerError,
        ),
        (
            "a slow application (UT)",
            &[("cookie", b"s=p1")],
            504,
            0x4,
            Class::ServerError,
        ),
        ("a 404", &[("cookie", b"s=p1")], 404, 0, Class::ClientError),
        (
            "a rule's pool",
            &[("x-beta", b"1")],
            503,
            UF,
            Class::Gateway,
        ),
    ];
    for (label, pairs, status, flags, class) in cases {
        let mut h = c.health().unwrap();
        let r = routed(&c, pairs, Some(&mut h));
        let out = answer(&c, &mut source(pairs, NOW), &mut h, &r, *status, *flags);
        assert_eq!(out.class, Some(*class), "{label}");
        assert_eq!(out.failed_over, None, "{label}");
        assert_eq!(out.set_cookie, None, "{label}");
    }
    // failover off: counted, nobody moved, nothing ejected
    let off = config(
        r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}], "failover": {"enabled": false}}"#,
    );
    assert!(off.health().is_none());
    let r = routed(&off, &[("cookie", b"sticky-split=p1")], None);
    let out = respond(
        &off,
        source(&[], NOW).set_answer(503, UF),
        &mut Prng::seed_from_u64(1),
        None,
        r,
    );
    assert_eq!(
        (out.class, out.failed_over, out.ejected),
        (Some(Class::Gateway), None, None)
    );
}

#[test]
fn no_clock_and_no_whole_map_read_for_a_returning_user_without_timeouts() {
    let c = config(THREE);
    let mut h = c.health().unwrap();
    let mut src = source(&[("cookie", b"s=p1")], NOW);
    let r = route(
        &c,
        &mut src,
        &mut Prng::seed_from_u64(1),
        Some(&mut h),
        false,
    );
    let out = answer(&c, &mut src, &mut h, &r, 200, 0);
    assert_eq!(out.class, Some(Class::Success));
    assert_eq!(
        (src.clock_reads, src.full_reads, src.single_reads),
        (0, 0, 1)
    );
    // with a timeout: one clock read per request
    let timed = config(
        r#"{"pools": [{"name": "p1", "weight": 1}], "cookie": {"name": "s", "idleTimeout": 60}}"#,
    );
    let mut src = source(&[("cookie", b"s=p1")], NOW);
    route(
        &timed,
        &mut src,
        &mut Prng::seed_from_u64(1),
        timed.health().as_mut(),
        false,
    );
    assert_eq!(src.clock_reads, 1);
}

const TIMED: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
    "cookie": {"name": "s", "absoluteTimeout": 100, "idleTimeout": 20, "signingKeyEnv": "KEY"}}"#;

/// Routes a request carrying cookie `value` (if any) at `now`.
pub(super) fn at(c: &Config, value: Option<&str>, now: u64) -> Routed {
    let cookie = value.map(|v| format!("s={v}"));
    let pairs: Vec<(&str, &[u8])> = cookie.iter().map(|v| ("cookie", v.as_bytes())).collect();
    route(
        c,
        &mut source(&pairs, now),
        &mut Prng::seed_from_u64(now),
        None,
        false,
    )
}

#[test]
fn timeouts_expire_values_and_renewal_keeps_the_assignment_time() {
    let c = config(TIMED);
    let first = at(&c, None, NOW);
    let value = value_of(first.set_cookie.as_deref().unwrap());
    let pool = first.decision.pool;
    let cases: &[(&str, u64, Reason, bool)] = &[
        ("fresh", 5, Reason::Sticky, false),
        ("at half the idle window", 10, Reason::Sticky, false),
        ("past half: renewed", 11, Reason::Sticky, true),
        ("at the idle timeout", 20, Reason::Sticky, true),
        ("past the idle timeout", 21, Reason::Expired, true),
    ];
    for (label, after, reason, issued) in cases {
        let r = at(&c, Some(&value), NOW + after);
        assert_eq!(r.decision.reason, *reason, "{label}");
        assert_eq!(r.set_cookie.is_some(), *issued, "{label}");
        if *reason == Reason::Sticky {
            assert_eq!(r.decision.pool, pool, "{label}");
        }
    }
    // an active user renews every idle/2 seconds, until the absolute timeout
    let mut value = value;
    let mut renewals = 0;
    for t in 1..=100 {
        let r = at(&c, Some(&value), NOW + t);
        assert_eq!(
            (r.decision.reason, r.decision.pool),
            (Reason::Sticky, pool),
            "t={t}"
        );
        if let Some(set) = r.set_cookie {
            renewals += 1;
            value = value_of(&set);
        }
    }
    assert_eq!(renewals, 100 / 11, "renewed after 11 s of idle time each");
    assert_eq!(
        at(&c, Some(&value), NOW + 101).decision.reason,
        Reason::Expired
    );
    // a value without a stamp (the hand-written pattern's plain pool name, or
    // an older config's) has expired; a tampered stamp is a forgery
    let plain = config(
        r#"{"pools": [{"name": "p1", "weight": 1}], "cookie": {"name": "s", "idleTimeout": 20}}"#,
    );
    assert_eq!(at(&plain, Some("p1"), NOW).decision.reason, Reason::Expired);
    let fresh = value_of(at(&c, None, NOW).set_cookie.as_deref().unwrap());
    let mut tampered = fresh.into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(at(&c, Some(&tampered), NOW).decision.reason, Reason::Forged);
}

const SESSION: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
    "cookie": {"name": "s", "signingKeyEnv": "KEY"}, "sessionHeader": "x-session"}"#;

#[test]
fn the_session_header_pins_clients_without_cookies() {
    let c = config(SESSION);
    let first = routed(&c, &[], None);
    let value = first.session_value.clone().unwrap();
    assert_eq!(value, value_of(first.set_cookie.as_deref().unwrap()));
    let pool = first.decision.pool;
    let other = c.encode_cookie(Payload::Pool(1 - pool)).unwrap();
    let cases: &[(&str, Headers, Option<usize>, Reason, bool)] = &[
        (
            "round trip",
            headers(&[("x-session", value.as_bytes())]),
            Some(pool),
            Reason::Sticky,
            false,
        ),
        (
            "forged",
            headers(&[("x-session", b"p1.AAAAAAAAAAAAAAAAAAAAAA")]),
            None,
            Reason::Forged,
            true,
        ),
        (
            "not a value (no MAC)",
            headers(&[("x-session", b"\xff\xfe")]),
            None,
            Reason::Forged,
            true,
        ),
        (
            "the cookie wins over the header",
            headers(&[
                ("cookie", format!("s={other}").as_bytes()),
                ("x-session", value.as_bytes()),
            ]),
            Some(1 - pool),
            Reason::Sticky,
            false,
        ),
        (
            "a bad cookie, a good header",
            headers(&[("cookie", b"s=nope"), ("x-session", value.as_bytes())]),
            Some(pool),
            Reason::Sticky,
            false,
        ),
        (
            "the header sent twice",
            headers(&[
                ("x-session", value.as_bytes()),
                ("x-session", value.as_bytes()),
            ]),
            Some(pool),
            Reason::Sticky,
            false,
        ),
        (
            "the header twice, joined by a proxy",
            headers(&[("x-session", format!("{value}, {value}").as_bytes())]),
            Some(pool),
            Reason::Sticky,
            false,
        ),
        (
            "a forged copy first, then a valid one",
            headers(&[
                ("x-session", b"p1.AAAAAAAAAAAAAAAAAAAAAA"),
                ("x-session", other.as_bytes()),
            ]),
            Some(1 - pool),
            Reason::Sticky,
            false,
        ),
        (
            "empty elements only",
            headers(&[("x-session", b" , ,")]),
            None,
            Reason::New,
            true,
        ),
    ];
    for (label, h, want_pool, reason, issued) in cases {
        let mut src = FakeStream::new(h.clone());
        let r = route(&c, &mut src, &mut Prng::seed_from_u64(3), None, false);
        assert_eq!(r.decision.reason, *reason, "{label}");
        assert_eq!(r.session_value.is_some(), *issued, "{label}");
        if let Some(p) = want_pool {
            assert_eq!(r.decision.pool, *p, "{label}");
        }
    }
}
