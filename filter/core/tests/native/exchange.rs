//! One stream's whole life through `Exchange`, callback by callback as the
//! glue drives it: every row of the lifecycle, what each callback reads and
//! the plan it answers with.

use std::rc::Rc;

use rand_core::SeedableRng;
use sticky_split_core::config::Config;
use sticky_split_core::decide::Reason;
use sticky_split_core::health::{Change, Health, State};
use sticky_split_core::metrics::{slot, CounterLayout};
use sticky_split_core::outcome::Class;
use sticky_split_core::rng::Prng;
use sticky_split_core::stream::{Exchange, RequestPlan};
use sticky_split_core::testing::FakeStream;

use super::helpers::config;

const TWO: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
    "cookie": {"name": "s"}, "failover": {"ejectAfter": 1, "ejectSeconds": 30}}"#;
const NOW: u64 = 1_800_000_000;
const UF: u64 = 0x20;

fn layout(c: &Config) -> CounterLayout {
    CounterLayout {
        pools: c.pools.len(),
    }
}

/// What one stream did, callback by callback.
#[derive(Debug, Default)]
struct Life {
    headers: Vec<(String, String)>,
    request_count: Option<usize>,
    responded: bool,
    set_cookie: bool,
    pending: bool,
    response_counts: Vec<usize>,
    trailer_counts: Option<Vec<usize>>,
    end_counts: Option<Vec<usize>>,
    reads_at_trailers: usize,
}

/// Drives a stream: request headers (with the generator unless `no_rng`),
/// the response headers unless `reset`, the trailers, the end.
fn live(
    c: &Rc<Config>,
    mut s: FakeStream,
    health: Option<&mut Health>,
    reset: bool,
    no_rng: bool,
) -> Life {
    let mut health = health;
    let mut rng = Prng::seed_from_u64(7);
    let mut x = Exchange::new(c.clone());
    let mut life = Life::default();
    let body = s.has_body;
    let rng_now = (!no_rng).then_some(&mut rng);
    let plan: RequestPlan = x.on_request(&mut s, rng_now, health.as_deref_mut(), !body);
    life.headers = plan
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    life.request_count = plan.count;
    if !reset {
        let rng_now = (!no_rng).then_some(&mut rng);
        if let Some(p) = x.on_response(&mut s, rng_now, health.as_deref_mut()) {
            life.responded = true;
            life.set_cookie = p.set_cookie.is_some();
            life.pending = p.pending;
            life.response_counts = p.counts.iter().collect();
        }
        let before = s.reads();
        life.trailer_counts = x
            .on_trailers(&mut s, health.as_deref_mut())
            .map(|d| d.counts.iter().collect());
        life.reads_at_trailers = s.reads() - before;
    }
    life.end_counts = x.on_end(&mut s, health).map(|d| d.counts.iter().collect());
    life
}

#[test]
fn plain_requests_from_request_to_end() {
    let c = Rc::new(config(TWO));
    let l = layout(&c);
    // (what, request, response status, flags, request count, set-cookie,
    //  response counts)
    #[allow(clippy::type_complexity)]
    let rows: &[(&str, FakeStream, u16, u64, usize, bool, Vec<usize>)] = &[
        (
            "a returning user, 200",
            FakeStream::request(&[("cookie", "s=p2")]),
            200,
            0,
            slot(1, Reason::Sticky),
            false,
            vec![l.response(1, Class::Success)],
        ),
        (
            "a returning user, the application's 503",
            FakeStream::request(&[("cookie", "s=p1")]),
            503,
            0,
            slot(0, Reason::Sticky),
            false,
            vec![l.response(0, Class::ServerError)],
        ),
        (
            "a user whose pool cannot be reached moves, with a new cookie",
            FakeStream::request(&[("cookie", "s=p1")]),
            503,
            UF,
            slot(0, Reason::Sticky),
            true,
            vec![l.response(0, Class::Gateway), l.ejection(0), l.failover(0)],
        ),
    ];
    for (what, stream, status, flags, count, cookie, counts) in rows {
        let mut h = c.health().unwrap();
        let s = stream.clone().at(NOW).answer(*status, *flags);
        let life = live(&c, s, Some(&mut h), false, false);
        assert_eq!(life.request_count, Some(*count), "{what}");
        assert!(life.responded, "{what}");
        assert_eq!(life.set_cookie, *cookie, "{what}");
        assert!(!life.pending, "{what}");
        assert_eq!(&life.response_counts, counts, "{what}");
        assert_eq!(
            (life.trailer_counts, life.reads_at_trailers, life.end_counts),
            (None, 0, None),
            "{what}: a plain stream reads no trailers and counts nothing at its end"
        );
    }
}

#[test]
fn a_new_user_is_routed_counted_and_given_a_cookie() {
    let c = Rc::new(config(TWO));
    let life = live(
        &c,
        FakeStream::request(&[]).answer(200, 0),
        None,
        false,
        false,
    );
    let pool = life.headers.first().map(|(_, v)| v.clone()).unwrap();
    assert_eq!(life.headers.len(), 1);
    assert_eq!(life.headers[0].0, c.route_header);
    let index = c.pools.iter().position(|p| p.name == pool).unwrap();
    // counted with the response, which shows a pool answered
    assert_eq!(life.request_count, None);
    assert_eq!(
        life.response_counts,
        vec![
            layout(&c).response(index, Class::Success),
            slot(index, Reason::New)
        ]
    );
    assert!(life.set_cookie);
}

#[test]
fn the_request_plan_carries_cluster_header_route_cache_and_exported_decision() {
    let c = Rc::new(config(
        r#"{"pools": [{"name": "p1", "weight": 1, "cluster": "outbound|80|p1|svc"}],
            "cookie": {"name": "s"}, "clusterHeader": "x-cluster",
            "clearRouteCache": true, "exportDecision": true}"#,
    ));
    let mut x = Exchange::new(c.clone());
    let mut rng = Prng::seed_from_u64(1);
    let mut s = FakeStream::request(&[("cookie", "s=p1")]);
    let plan = x.on_request(&mut s, Some(&mut rng), None, true);
    assert_eq!(
        plan.headers().collect::<Vec<_>>(),
        [
            (c.route_header.as_str(), "p1"),
            ("x-cluster", "outbound|80|p1|svc")
        ]
    );
    assert!(plan.clear_route_cache);
    assert_eq!(
        plan.properties().collect::<Vec<_>>(),
        [
            ("sticky_split.pool", "p1"),
            ("sticky_split.reason", "sticky")
        ]
    );
    assert_eq!(plan.count, Some(slot(0, Reason::Sticky)));
}

#[test]
fn without_the_generator_the_stream_passes_untouched() {
    let c = Rc::new(config(TWO));
    let mut s = FakeStream::request(&[("cookie", "s=p1")]).answer(200, 0);
    let life = live(&c, s.clone(), None, false, true);
    assert!(life.headers.is_empty());
    assert_eq!(life.request_count, None);
    assert!(!life.responded, "nothing was routed, so nothing to judge");
    // nor does it read anything
    let mut x = Exchange::new(c);
    x.on_request(&mut s, None::<&mut Prng>, None, true);
    assert_eq!(s.reads(), 0);
}

#[test]
fn a_response_judged_without_the_generator_keeps_the_request_cookie() {
    let c = Rc::new(config(TWO));
    let mut x = Exchange::new(c);
    let mut rng = Prng::seed_from_u64(1);
    let mut s = FakeStream::request(&[]).answer(200, 0);
    x.on_request(&mut s, Some(&mut rng), None, true);
    let plan = x.on_response(&mut s, None::<&mut Prng>, None).unwrap();
    assert!(
        plan.set_cookie.is_some(),
        "the new user still gets their cookie"
    );
    assert_eq!(
        plan.counts.iter().count(),
        1,
        "the request's own count only"
    );
    assert_eq!(
        s.reads() - s.single_reads,
        0,
        "nothing judged, nothing read"
    );
}

fn grpc() -> FakeStream {
    FakeStream::request(&[
        (":method", "POST"),
        ("content-type", "application/grpc"),
        ("cookie", "s=p2"),
    ])
    .body()
    .at(NOW)
}

#[test]
fn grpc_calls_from_request_to_end() {
    let c = Rc::new(config(TWO));
    let l = layout(&c);
    // status in the trailers: counted there, nothing at the end
    let life = live(
        &c,
        grpc().answer(200, 0).trailer("grpc-status", "0"),
        None,
        false,
        false,
    );
    assert!(life.pending);
    assert!(life.response_counts.is_empty());
    assert_eq!(
        life.trailer_counts,
        Some(vec![l.response(1, Class::Success)])
    );
    assert_eq!(life.end_counts, None);
    // trailers-only error: counted with the headers, no trailers read
    let life = live(
        &c,
        grpc().answer(200, 0).response_header("grpc-status", "5"),
        None,
        false,
        false,
    );
    assert!(!life.pending);
    assert_eq!(
        life.response_counts,
        vec![l.response(1, Class::ClientError)]
    );
    assert_eq!((life.trailer_counts, life.reads_at_trailers), (None, 0));
    // headers, then the stream ends without trailers: a failure at the end
    let mut h = c.health().unwrap();
    let mut rng = Prng::seed_from_u64(1);
    let mut x = Exchange::new(c.clone());
    let mut s = grpc().answer(200, UF);
    x.on_request(&mut s, Some(&mut rng), Some(&mut h), false);
    assert!(
        x.on_response(&mut s, Some(&mut rng), Some(&mut h))
            .unwrap()
            .pending
    );
    let done = x.on_end(&mut s, Some(&mut h)).unwrap();
    assert_eq!(
        done.counts.iter().collect::<Vec<_>>(),
        [l.response(1, Class::Gateway), l.ejection(1)]
    );
    assert_eq!(done.ejected, Some("p2"));
    assert!(
        x.on_end(&mut s, Some(&mut h)).is_none(),
        "a stream ends once"
    );
}

/// Health with pool p2 ejected at NOW and its ejection over at NOW + 31.
fn half_open(c: &Config) -> Health {
    let mut h = c.health().unwrap();
    assert_eq!(h.record(1, true, NOW), Change::Ejected);
    h
}

#[test]
fn a_probe_reset_before_its_response_is_given_back_at_the_end() {
    let c = Rc::new(config(TWO));
    let mut h = half_open(&c);
    let s = FakeStream::request(&[("cookie", "s=p2")]).at(NOW + 31);
    let life = live(&c, s, Some(&mut h), true, false);
    assert_eq!(life.request_count, Some(slot(1, Reason::Sticky)));
    assert_eq!(life.end_counts, None);
    assert_eq!(
        h.state(1),
        Some(State::HalfOpen { probing: false }),
        "another request may probe"
    );
}

#[test]
fn a_probe_answered_restores_the_pool_and_the_end_changes_nothing() {
    let c = Rc::new(config(TWO));
    let mut h = half_open(&c);
    let s = FakeStream::request(&[("cookie", "s=p2")])
        .at(NOW + 31)
        .answer(200, 0);
    let life = live(&c, s, Some(&mut h), false, false);
    assert!(life.responded);
    assert_eq!(h.state(1), Some(State::Closed { failures: 0 }));
}

#[test]
fn a_stream_that_is_not_the_probe_leaves_the_probe_alone_at_its_end() {
    let c = Rc::new(config(TWO));
    let mut h = half_open(&c);
    let mut rng = Prng::seed_from_u64(1);
    // the probe, in flight
    let mut probe = Exchange::new(c.clone());
    let mut ps = FakeStream::request(&[("cookie", "s=p2")]).at(NOW + 31);
    probe.on_request(&mut ps, Some(&mut rng), Some(&mut h), true);
    assert_eq!(h.state(1), Some(State::HalfOpen { probing: true }));
    // a user pinned to p2 meanwhile is sent elsewhere, then reset
    let other = FakeStream::request(&[("cookie", "s=p2")]).at(NOW + 31);
    let life = live(&c, other, Some(&mut h), true, false);
    // moved, so given a value: counted at the end, as no response came
    assert_eq!(life.request_count, None);
    assert_eq!(life.end_counts, Some(vec![slot(0, Reason::Failover)]));
    assert_eq!(h.state(1), Some(State::HalfOpen { probing: true }));
}

#[test]
fn no_pool_no_pin_a_reply_envoy_made_itself_is_nobodys() {
    let c = Rc::new(config(
        r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
            "cookie": {"name": "s"}, "sessionHeader": "x-s", "debugHeader": "x-debug"}"#,
    ));
    let l = layout(&c);
    // a new user whose request Envoy answers itself (no route, a rejected
    // CONNECT, a redirect route, another filter's denial): no value,
    // nothing counted
    for status in [404, 403, 301, 429] {
        let mut x = Exchange::new(c.clone());
        let mut rng = Prng::seed_from_u64(3);
        let mut s = FakeStream::request(&[]).answer(status, 0).local_reply();
        let plan = x.on_request(&mut s, Some(&mut rng), None, true);
        assert_eq!(plan.count, None);
        let plan = x.on_response(&mut s, Some(&mut rng), None).unwrap();
        assert!(plan.unanswered, "{status}");
        assert_eq!(
            (plan.set_cookie.as_deref(), &plan.session),
            (None, &None),
            "{status}"
        );
        assert_eq!(plan.counts.iter().count(), 0, "{status}");
        assert!(plan.debug.unwrap().1.ends_with("; answered-by=envoy"));
        assert_eq!(s.upstream_reads, 1);
        assert!(
            x.on_end(&mut s, None).is_none(),
            "{status}: nothing left to count"
        );
    }
    // a 2xx is taken for the pool's answer without asking (a host call per
    // new user): a direct_response 200 is the documented exception
    let mut s = FakeStream::request(&[]).answer(200, 0).local_reply();
    let life = live(&c, s.clone(), None, false, false);
    assert!(life.set_cookie);
    let mut x = Exchange::new(c.clone());
    let mut rng = Prng::seed_from_u64(3);
    x.on_request(&mut s, Some(&mut rng), None, true);
    assert!(
        !x.on_response(&mut s, Some(&mut rng), None)
            .unwrap()
            .unanswered
    );
    assert_eq!(s.upstream_reads, 0);
    // a pinned user: nothing to withhold, so nothing asked, counted as ever
    let mut s = FakeStream::request(&[("cookie", "s=p2")])
        .answer(404, 0)
        .local_reply();
    let life = live(&c, s.clone(), None, false, false);
    assert_eq!(life.request_count, Some(slot(1, Reason::Sticky)));
    assert_eq!(
        life.response_counts,
        vec![l.response(1, Class::ClientError)]
    );
    let mut x = Exchange::new(c.clone());
    let mut rng = Prng::seed_from_u64(3);
    x.on_request(&mut s, Some(&mut rng), None, true);
    x.on_response(&mut s, Some(&mut rng), None);
    assert_eq!(s.upstream_reads, 0);
    // a new user whose pool answered with an error: asked once, counted
    // with the response, given the value
    let s = FakeStream::request(&[]).answer(404, 0);
    let life = live(&c, s, None, false, false);
    assert!(life.set_cookie);
    assert_eq!(life.response_counts.len(), 2);
}

#[test]
fn a_gateway_failure_of_a_new_users_pool_is_the_pools_as_ever() {
    // Envoy's own reply, but for the pool: failover's business, not "no pool"
    let c = Rc::new(config(TWO));
    let mut h = c.health().unwrap();
    let mut x = Exchange::new(c.clone());
    let mut rng = Prng::seed_from_u64(3);
    let mut s = FakeStream::request(&[])
        .at(NOW)
        .answer(503, UF)
        .local_reply();
    x.on_request(&mut s, Some(&mut rng), Some(&mut h), true);
    let plan = x.on_response(&mut s, Some(&mut rng), Some(&mut h)).unwrap();
    assert!(!plan.unanswered);
    assert_eq!(s.upstream_reads, 0);
    assert!(
        plan.set_cookie.is_some(),
        "moved off the failing pool, with a new value"
    );
    assert!(plan.failed_over.is_some());
}

#[test]
fn a_probe_envoy_answered_itself_is_given_back() {
    // a sticky rule sends the request to p2 just out of its ejection, so it
    // is p2's probe; Envoy answers it alone (a 404 of no route): the probe
    // learnt nothing and another request may probe
    let c = Rc::new(config(
        r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
            "cookie": {"name": "s"}, "failover": {"ejectAfter": 1, "ejectSeconds": 30},
            "rules": [{"match": {"path": {"prefix": "/t"}}, "pool": "p2", "sticky": true}]}"#,
    ));
    for no_rng in [false, true] {
        let mut h = half_open(&c);
        let mut rng = Prng::seed_from_u64(1);
        let mut x = Exchange::new(c.clone());
        let mut s = FakeStream::request(&[(":path", "/t")])
            .at(NOW + 31)
            .answer(404, 0)
            .local_reply();
        x.on_request(&mut s, Some(&mut rng), Some(&mut h), true);
        assert_eq!(h.state(1), Some(State::HalfOpen { probing: true }));
        let rng_now = (!no_rng).then_some(&mut rng);
        let plan = x.on_response(&mut s, rng_now, Some(&mut h)).unwrap();
        assert_eq!(plan.unanswered, !no_rng);
        assert_eq!(
            h.state(1),
            Some(State::HalfOpen { probing: false }),
            "no_rng: {no_rng}"
        );
    }
}

#[test]
fn a_renewal_or_a_resigning_is_counted_on_arrival_and_never_asked_about() {
    let c = Rc::new(config(
        r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}],
            "cookie": {"name": "s", "signingKeyEnv": "KEY", "idleTimeout": 600}}"#,
    ));
    let mut rng = Prng::seed_from_u64(1);
    // a value issued at NOW, renewed after more than half the idle timeout
    let mut first = Exchange::new(c.clone());
    let mut s = FakeStream::request(&[]).at(NOW).answer(200, 0);
    first.on_request(&mut s, Some(&mut rng), None, true);
    let cookie = first
        .on_response(&mut s, Some(&mut rng), None)
        .unwrap()
        .set_cookie
        .unwrap();
    let value = cookie.split(';').next().unwrap().to_string();
    let mut x = Exchange::new(c.clone());
    let mut s = FakeStream::request(&[("cookie", &value)])
        .at(NOW + 400)
        .answer(404, 0)
        .local_reply();
    let plan = x.on_request(&mut s, Some(&mut rng), None, true);
    assert!(plan.count.is_some(), "a pinned user is counted on arrival");
    let plan = x.on_response(&mut s, Some(&mut rng), None).unwrap();
    assert!(plan.set_cookie.is_some(), "the renewal is written");
    assert!(!plan.unanswered);
    assert_eq!(s.upstream_reads, 0);
}
