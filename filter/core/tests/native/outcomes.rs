//! What a response's outcome does: gRPC calls judged by their `grpc-status`
//! (trailers-only, in the trailers, or none), Envoy's failure replies to
//! gRPC, and which gateway-level failures move users (UF and UH at once, UR
//! and UC once they follow another gateway-level failure, UO never).

use rand_core::SeedableRng;
use sticky_split_core::config::Config;
use sticky_split_core::decide::Reason;
use sticky_split_core::health::{Health, State};
use sticky_split_core::metrics::CounterLayout;
use sticky_split_core::outcome::{Class, Failure};
use sticky_split_core::request::Protocol;
use sticky_split_core::rng::Prng;
use sticky_split_core::stream::{conclude, respond, route, ResponsePlan, Routed};

use super::helpers::{config, headers};
use sticky_split_core::testing::FakeStream;

const UH: u64 = 0x2;
const UR: u64 = 0x10;
const UF: u64 = 0x20;
const UC: u64 = 0x40;
const UO: u64 = 0x80;

/// Two pools, ejection after 3 gateway-level failures.
const TWO: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
    "cookie": {"name": "s"}, "failover": {"ejectAfter": 3}}"#;

/// A gRPC call pinned to `pool` (or a new one without).
fn grpc_call(pool: Option<&str>) -> FakeStream {
    let cookie = pool.map(|p| format!("s={p}"));
    let mut pairs: Vec<(&str, &[u8])> =
        vec![(":method", b"POST"), ("content-type", b"application/grpc")];
    if let Some(c) = &cookie {
        pairs.push(("cookie", c.as_bytes()));
    }
    let mut src = FakeStream::new(headers(&pairs));
    src.has_body = true;
    src.now = 1_800_000_000;
    src
}

fn routed(c: &Config, src: &mut FakeStream, h: Option<&mut Health>) -> Routed {
    let body = src.has_body;
    route(c, src, &mut Prng::seed_from_u64(5), h, body)
}

/// The plan for a response with this HTTP status, `grpc-status` header (a
/// trailers-only response) and flags.
fn answer<'a>(
    c: &'a Config,
    src: &mut FakeStream,
    h: Option<&mut Health>,
    r: &Routed,
    status: u16,
    grpc_status: Option<&str>,
    flags: u64,
) -> ResponsePlan<'a> {
    src.set_answer(status, flags);
    src.response = grpc_status
        .map(|g| vec![("grpc-status".to_string(), g.as_bytes().to_vec())])
        .unwrap_or_default();
    respond(c, src, &mut Prng::seed_from_u64(6), h, r.clone())
}

#[test]
fn grpc_codes_take_the_class_envoy_maps_them_to() {
    // (code, class): OK; client-side codes; server-side codes; unknown codes
    let cases: &[(u32, Class)] = &[
        (0, Class::Success),
        (1, Class::ClientError),  // CANCELLED 499
        (3, Class::ClientError),  // INVALID_ARGUMENT 400
        (5, Class::ClientError),  // NOT_FOUND 404
        (6, Class::ClientError),  // ALREADY_EXISTS 409
        (7, Class::ClientError),  // PERMISSION_DENIED 403
        (8, Class::ClientError),  // RESOURCE_EXHAUSTED 429
        (9, Class::ClientError),  // FAILED_PRECONDITION 400
        (10, Class::ClientError), // ABORTED 409
        (11, Class::ClientError), // OUT_OF_RANGE 400
        (16, Class::ClientError), // UNAUTHENTICATED 401
        (2, Class::ServerError),  // UNKNOWN 500
        (4, Class::ServerError),  // DEADLINE_EXCEEDED 504
        (12, Class::ServerError), // UNIMPLEMENTED 501
        (13, Class::ServerError), // INTERNAL 500
        (14, Class::ServerError), // UNAVAILABLE 503
        (15, Class::ServerError), // DATA_LOSS 500
        (17, Class::ServerError), // not a code: 500
    ];
    for &(code, class) in cases {
        assert_eq!(Class::of_grpc(Some(code), 0), class, "code {code}");
        assert_eq!(
            Class::of_grpc(Some(code), UF),
            Class::Gateway,
            "code {code} + UF"
        );
    }
    assert_eq!(Class::of_grpc(None, 0), Class::ServerError, "no status");
    assert_eq!(Class::of_grpc(None, UR), Class::Gateway, "reset by Envoy");
    // the client went away (DC) or reset the stream (DR): a cancel
    assert_eq!(Class::of_grpc(None, 0x4000), Class::ClientError);
    assert_eq!(Class::of_grpc(None, 0x1000_0000), Class::ClientError);
    assert_eq!(Class::of_grpc(Some(0), 0x4000), Class::Success);
}

#[test]
fn failures_by_flag() {
    let cases: &[(u64, Option<Failure>)] = &[
        (0, None),
        (0x4, None), // UT: the application is slow
        (0x8000, None),
        (UF, Some(Failure::Unreachable)),
        (UH, Some(Failure::Unreachable)),
        (UR, Some(Failure::Reset)),
        (UC, Some(Failure::Reset)),
        (UO, Some(Failure::Overflow)),
        (UO | UF, Some(Failure::Unreachable)),
        (UO | UR, Some(Failure::Reset)),
    ];
    for &(flags, want) in cases {
        assert_eq!(Failure::of(flags), want, "{flags:#x}");
    }
}

#[test]
fn the_protocol_comes_from_the_content_type() {
    let cases: &[(&[u8], Protocol)] = &[
        (b"application/grpc", Protocol::Grpc),
        (b"application/grpc+proto", Protocol::Grpc),
        (b"Application/GRPC", Protocol::Grpc),
        (b"application/grpc-web", Protocol::GrpcWeb),
        (b"application/grpc-web-text+proto", Protocol::GrpcWeb),
        (b"application/grpcx", Protocol::Http),
        (b"application/json", Protocol::Http),
        (b"application/gr", Protocol::Http),
        (b"", Protocol::Http),
        (b"\xff\xfe", Protocol::Http),
    ];
    for &(ct, want) in cases {
        assert_eq!(
            Protocol::of(Some(ct)),
            want,
            "{:?}",
            String::from_utf8_lossy(ct)
        );
    }
}

#[test]
fn a_request_without_a_body_costs_no_content_type_read() {
    let c = config(TWO);
    let mut get = FakeStream::new(headers(&[("cookie", b"s=p1")]));
    let r = routed(&c, &mut get, None);
    assert_eq!((r.protocol, get.single_reads), (Protocol::Http, 1));
    let mut post = FakeStream::new(headers(&[
        ("cookie", b"s=p1"),
        ("content-type", b"text/plain"),
    ]));
    post.has_body = true;
    let r = routed(&c, &mut post, None);
    assert_eq!((r.protocol, post.single_reads), (Protocol::Http, 2));
    // neither counters nor failover: nothing to judge, so a gRPC call's
    // content-type is not read (the two reads: cookie, and :scheme for the
    // new user's Secure attribute)
    let quiet = config(
        r#"{"pools": [{"name": "p1", "weight": 1}], "responseCounters": false, "failover": {"enabled": false}}"#,
    );
    let mut call = grpc_call(None);
    let r = routed(&quiet, &mut call, None);
    assert_eq!((r.protocol, call.single_reads), (Protocol::Http, 2));
    let mut counted = grpc_call(None);
    let r = routed(&config(TWO), &mut counted, None);
    assert_eq!((r.protocol, counted.single_reads), (Protocol::Grpc, 3));
}

#[test]
fn envoys_failure_reply_to_grpc_moves_the_user_and_ejects() {
    let c = config(TWO);
    let mut h = c.health().unwrap();
    let layout = CounterLayout { pools: 2 };
    for i in 0..3 {
        let mut src = grpc_call(Some("p2"));
        let r = routed(&c, &mut src, Some(&mut h));
        assert_eq!(
            (r.protocol, r.decision.reason),
            (Protocol::Grpc, Reason::Sticky)
        );
        // HTTP 200, grpc-status 14 trailers-only, UF: Envoy could not connect
        let out = answer(&c, &mut src, Some(&mut h), &r, 200, Some("14"), UF);
        assert_eq!(out.class, Some(Class::Gateway), "call {i}");
        assert!(!out.pending);
        assert_eq!(src.flag_reads, 1);
        let moved = out.failed_over.unwrap();
        assert_eq!((moved.pool, moved.reason), (0, Reason::Failover));
        assert!(out.set_cookie.unwrap().starts_with("s=p1;"));
        assert_eq!(out.ejected.is_some(), i == 2, "ejected after the third");
        assert!(out
            .counts
            .iter()
            .any(|s| s == layout.response(1, Class::Gateway)));
    }
    assert!(matches!(h.state(1), Some(State::Open { .. })));
    // new gRPC users avoid the ejected pool
    for seed in 0..50 {
        let mut src = grpc_call(None);
        let r = route(
            &c,
            &mut src,
            &mut Prng::seed_from_u64(seed),
            Some(&mut h),
            true,
        );
        assert_eq!(r.decision.pool, 0);
    }
}

#[test]
fn grpc_outcomes_are_counted_by_status() {
    let c = config(TWO);
    let layout = CounterLayout { pools: 2 };
    // (case, grpc-status in the response headers, in the trailers (outer
    // None: no trailers), flags at the end, class)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<Option<&'a str>>,
        u64,
        Class,
    );
    let cases: &[Case] = &[
        (
            "OK in the trailers",
            None,
            Some(Some("0")),
            0,
            Class::Success,
        ),
        (
            "application UNAVAILABLE in the trailers",
            None,
            Some(Some("14")),
            0,
            Class::ServerError,
        ),
        (
            "trailers-only NOT_FOUND",
            Some("5"),
            None,
            0,
            Class::ClientError,
        ),
        (
            "trailers without a status",
            None,
            Some(None),
            0,
            Class::ServerError,
        ),
        ("a reset stream", None, None, 0, Class::ServerError),
        ("a stream Envoy cut (UR)", None, None, UR, Class::Gateway),
    ];
    for &(label, in_headers, trailers, flags, class) in cases {
        let mut h = c.health().unwrap();
        let mut src = grpc_call(Some("p1"));
        let r = routed(&c, &mut src, Some(&mut h));
        let out = answer(&c, &mut src, Some(&mut h), &r, 200, in_headers, 0);
        let counted = if in_headers.is_some() {
            assert!(!out.pending, "{label}");
            out.class.unwrap()
        } else {
            assert!(out.pending && out.class.is_none(), "{label}");
            assert_eq!(
                src.flag_reads, 0,
                "{label}: a call going well reads no flags"
            );
            assert_eq!(
                out.counts.iter().count(),
                0,
                "{label}: counted before the status"
            );
            src.flags = flags;
            let done = conclude(
                &c,
                &mut src,
                Some(&mut h),
                0,
                trailers.flatten().map(str::as_bytes),
            );
            assert_eq!(
                done.counts.iter().collect::<Vec<_>>(),
                vec![layout.response(0, done.class)]
            );
            done.class
        };
        assert_eq!(counted, class, "{label}");
        // one reset counts toward ejection, an application's error does not
        let failures = match h.state(0) {
            Some(State::Closed { failures }) => failures,
            s => panic!("{label}: {s:?}"),
        };
        assert_eq!(failures, u32::from(class == Class::Gateway), "{label}");
    }
}

#[test]
fn grpc_web_is_judged_by_its_http_status_without_trailers() {
    let c = config(TWO);
    let mut src = FakeStream::new(headers(&[
        ("content-type", b"application/grpc-web+proto"),
        ("cookie", b"s=p1"),
    ]));
    src.has_body = true;
    let r = routed(&c, &mut src, None);
    assert_eq!(r.protocol, Protocol::GrpcWeb);
    let out = answer(&c, &mut src, None, &r, 200, None, 0);
    assert_eq!((out.class, out.pending), (Some(Class::Success), false));
    let out = answer(&c, &mut src, None, &r, 200, Some("13"), 0);
    assert_eq!(out.class, Some(Class::ServerError));
}

/// A response from p2 (users pinned there) with these flags; whether it
/// moved its user.
fn moved_by(c: &Config, h: &mut Health, flags: u64) -> bool {
    let mut src = FakeStream::new(headers(&[("cookie", b"s=p2")]));
    src.now = 1_800_000_000;
    let r = routed(c, &mut src, Some(h));
    assert_eq!(r.decision.pool, 1, "p2 is not ejected");
    let status = if flags == 0 { 200 } else { 503 };
    src.set_answer(status, flags);
    let out = respond(c, &mut src, &mut Prng::seed_from_u64(1), Some(h), r);
    assert_eq!(out.failed_over.is_some(), out.set_cookie.is_some());
    out.failed_over.is_some()
}

#[test]
fn a_reset_moves_its_user_only_after_another_gateway_failure() {
    // (name, responses of p2 in order (flags, 0 for an answer), which moved
    // their user); ejectAfter 3
    let cases: [(&str, &[(u64, bool)]); 5] = [
        (
            "one cut connection is routine",
            &[(UC, false), (0, false), (UR, false)],
        ),
        (
            "a pool dying under requests: the first cut stays, the rest move",
            &[(UC, false), (UC, true), (UR, true)],
        ),
        (
            "a reset after a refused connection moves",
            &[(UF, true), (UR, true)],
        ),
        (
            "a refused connection after a reset moves, as always",
            &[(UR, false), (UF, true)],
        ),
        (
            "an answer in between starts the count again",
            &[(UR, false), (0, false), (UC, false), (UC, true)],
        ),
    ];
    for (name, responses) in cases {
        let c = config(TWO);
        let mut h = c.health().unwrap();
        for (i, &(flags, moves)) in responses.iter().enumerate() {
            assert_eq!(moved_by(&c, &mut h, flags), moves, "{name}: response {i}");
        }
    }
}

#[test]
fn an_overflow_neither_moves_nor_ejects() {
    let c = config(TWO);
    let mut h = c.health().unwrap();
    for _ in 0..20 {
        let mut src = FakeStream::new(headers(&[("cookie", b"s=p2")]));
        let r = routed(&c, &mut src, Some(&mut h));
        src.set_answer(503, UO);
        let out = respond(&c, &mut src, &mut Prng::seed_from_u64(1), Some(&mut h), r);
        assert_eq!(
            out.class,
            Some(Class::Gateway),
            "counted as Envoy's own reply"
        );
        assert_eq!(
            (out.failed_over, out.ejected, out.set_cookie),
            (None, None, None)
        );
        assert_eq!(src.clock_reads, 0);
    }
    assert_eq!(h.state(1), Some(State::Closed { failures: 0 }));
}

#[test]
fn unreachable_moves_at_once() {
    for flags in [UF, UH] {
        let c = config(TWO);
        let mut h = c.health().unwrap();
        let mut src = FakeStream::new(headers(&[("cookie", b"s=p2")]));
        let r = routed(&c, &mut src, Some(&mut h));
        src.set_answer(503, flags);
        let out = respond(&c, &mut src, &mut Prng::seed_from_u64(1), Some(&mut h), r);
        assert_eq!(out.failed_over.map(|d| d.pool), Some(0), "{flags:#x}");
    }
}

#[test]
fn a_websocket_upgrade_is_counted_as_1xx() {
    let c = config(TWO);
    let mut src = FakeStream::new(headers(&[
        ("upgrade", b"websocket"),
        ("connection", b"upgrade"),
    ]));
    let r = routed(&c, &mut src, None);
    let pool = r.decision.pool;
    src.set_answer(101, 0);
    let out = respond(&c, &mut src, &mut Prng::seed_from_u64(1), None, r.clone());
    assert_eq!(out.class, Some(Class::Informational));
    assert_eq!(
        out.counts.iter().collect::<Vec<_>>(),
        vec![CounterLayout { pools: 2 }.response(pool, Class::Informational)]
    );
    assert_eq!(out.set_cookie, r.set_cookie, "the 101 carries the cookie");
}

/// A pool ejected on one worker (per-VM health) and then past its
/// ejection: the request routed there is its probe.
fn probing(c: &Config, h: &mut Health, src: &mut FakeStream) -> Routed {
    while h.record(1, true, 1_800_000_000) != sticky_split_core::health::Change::Ejected {}
    src.now = 1_800_000_000 + 31;
    let body = src.has_body;
    let r = route(c, src, &mut Prng::seed_from_u64(2), Some(h), body);
    assert!(r.probe, "{r:?}");
    r
}

#[test]
fn a_probe_shed_by_the_circuit_breaker_lets_another_request_probe() {
    let c = config(TWO);
    let mut h = c.health().unwrap();
    let mut src = FakeStream::new(headers(&[("cookie", b"s=p2")]));
    let r = probing(&c, &mut h, &mut src);
    src.set_answer(503, UO);
    respond(&c, &mut src, &mut Prng::seed_from_u64(1), Some(&mut h), r);
    assert_eq!(h.state(1), Some(State::HalfOpen { probing: false }));
    let again = route(
        &c,
        &mut src,
        &mut Prng::seed_from_u64(3),
        Some(&mut h),
        false,
    );
    assert!(again.probe);
}

#[test]
fn a_grpc_probe_that_answers_restores_the_pool_before_its_trailers() {
    let c = config(TWO);
    let mut h = c.health().unwrap();
    let mut src = grpc_call(Some("p2"));
    let r = probing(&c, &mut h, &mut src);
    let out = answer(&c, &mut src, Some(&mut h), &r, 200, None, 0);
    assert!(out.pending);
    assert_eq!(h.state(1), Some(State::Closed { failures: 0 }));
}
