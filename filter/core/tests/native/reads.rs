//! The fetch policy: which headers `route` asks the host for, that what it
//! decides equals the decision on the whole request, and that it draws at
//! most once.

use core::convert::Infallible;

use rand_core::{SeedableRng, TryRng};
use sticky_split_core::config::Config;
use sticky_split_core::decide::settled_by_first_cookie_header;
use sticky_split_core::decide::{resolve_with, Conditions, Reason, Resolved};
use sticky_split_core::request::Request;
use sticky_split_core::rng::Prng;
use sticky_split_core::stream::route;

use super::helpers::{config, decide, headers};
use sticky_split_core::testing::FakeStream;

/// Steps 1 to 3 with every pool in service and no clock.
fn resolve(c: &Config, req: &Request) -> Resolved {
    resolve_with(c, req, Conditions::default())
}

/// A generator that counts its draws.
struct Counting {
    inner: Prng,
    draws: usize,
}

impl Counting {
    fn new(seed: u64) -> Self {
        Counting {
            inner: Prng::seed_from_u64(seed),
            draws: 0,
        }
    }
}

impl TryRng for Counting {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.draws += 1;
        self.inner.try_next_u32()
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.draws += 1;
        self.inner.try_next_u64()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.draws += 1;
        self.inner.try_fill_bytes(dst)
    }
}

fn configs() -> Vec<Config> {
    vec![
        config(
            r#"{"pools": [{"name": "pool1", "weight": 80}, {"name": "pool2", "weight": 20}], "cookie": {"name": "s"}}"#,
        ),
        config(
            r#"{"pools": [{"name": "pool1", "weight": 1}, {"name": "pool2", "weight": 1},
                          {"name": "old", "weight": 0, "evict": true}],
                "cookie": {"name": "s"},
                "rules": [{"match": {"cookies": [{"name": "beta", "exact": "1"}]}, "pool": "pool2"}],
                "hashOn": {"cookie": "uid"}}"#,
        ),
        // a rule on the affinity cookie itself: its absence from the first
        // header does not mean it is absent from the request
        config(
            r#"{"pools": [{"name": "pool1", "weight": 1}, {"name": "pool2", "weight": 1}],
                "cookie": {"name": "s"},
                "rules": [{"match": {"cookies": [{"name": "s", "present": false}]}, "pool": "pool2"}]}"#,
        ),
        config(
            r#"{"pools": [{"name": "pool1", "weight": 3}, {"name": "pool2", "weight": 1}],
                "cookie": {"name": "s"}, "affinity": "ramp", "generation": "g2"}"#,
        ),
    ]
}

/// Over requests with two Cookie headers: `route`, which starts from the
/// first Cookie header, decides as `decide` does on the whole request, with
/// one draw at most; the first header settles a good share of them, and
/// among the rest are requests whose first header alone would mislead.
#[test]
fn route_decides_as_the_whole_request_would() {
    let pieces: &[&[u8]] = &[
        b"s=pool1",
        b"s=pool2",
        b"s=old",
        b"s=bogus",
        b"beta=1",
        b"beta=0",
        b"uid=u7",
        b"a=1",
        b"s=g2.@AAAAAAAAAAE",
        b"s=g1.pool1",
    ];
    let (mut settled, mut unsettled_differs, mut seed) = (0, 0, 0);
    for c in &configs() {
        for a in pieces {
            for b in pieces {
                for d in pieces {
                    let first = [*a, b"; ", *b].concat();
                    let all = headers(&[("cookie", &first), ("cookie", d)]);
                    seed += 1;
                    let full = decide(c, &Request::new(&all), &mut Prng::seed_from_u64(seed));
                    let mut source = FakeStream::new(all.clone());
                    let mut rng = Counting::new(seed);
                    let routed = route(c, &mut source, &mut rng, None, false);
                    assert_eq!(routed.decision, full, "{all:?}");
                    assert!(rng.draws <= 1, "{} draws for {all:?}", rng.draws);
                    assert_eq!(routed.decision.cookie.is_some(), rng.draws == 1);

                    let first_only = headers(&[("cookie", &first)]);
                    let partial = resolve(c, &Request::new(&first_only));
                    if settled_by_first_cookie_header(c, &first, &partial) {
                        settled += 1;
                        assert_eq!(source.full_reads, 0, "{all:?}");
                        assert_eq!(partial, resolve(c, &Request::new(&all)), "{all:?}");
                    } else {
                        assert_eq!(source.full_reads, 1, "{all:?}");
                        if partial != resolve(c, &Request::new(&all)) {
                            unsettled_differs += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(settled > 500, "settled {settled}");
    assert!(
        unsettled_differs > 50,
        "unsettled and different {unsettled_differs}"
    );
}

/// (case, config, request headers, headers read one by one, whole-map reads)
type FetchCase<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a [u8])],
    &'a [&'a str],
    usize,
);

/// Which host reads each kind of config and request costs.
#[test]
fn reads_only_what_the_decision_needs() {
    const PLAIN: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 1}], "cookie": {"name": "s"}}"#;
    const SECURE: &str =
        r#"{"pools": [{"name": "p1", "weight": 1}], "cookie": {"name": "s", "secure": true}}"#;
    const PATH_RULE: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "v2", "weight": 0}],
        "cookie": {"name": "s"}, "rules": [{"match": {"path": {"prefix": "/v2/"}}, "pool": "v2"}]}"#;
    const HEADER_RULE: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "b", "weight": 0}],
        "cookie": {"name": "s"}, "rules": [{"match": {"headers": [{"name": "x-beta", "exact": "1"}]}, "pool": "b"}]}"#;
    let cases: &[FetchCase] = &[
        (
            "returning user",
            PLAIN,
            &[("cookie", b"a=1; s=p2")],
            &["cookie"],
            0,
        ),
        (
            "new user, Secure follows :scheme",
            PLAIN,
            &[],
            &["cookie", ":scheme"],
            0,
        ),
        (
            "new user, other cookies",
            PLAIN,
            &[("cookie", b"a=1")],
            &["cookie"],
            1,
        ),
        ("new user, Secure fixed", SECURE, &[], &["cookie"], 0),
        (
            "path rule, returning user",
            PATH_RULE,
            &[("cookie", b"s=p1")],
            &[":path", "cookie"],
            0,
        ),
        (
            "path rule matches",
            PATH_RULE,
            &[(":path", b"/v2/x")],
            &[":path", "cookie"],
            0,
        ),
        (
            "header rule: the whole map",
            HEADER_RULE,
            &[("cookie", b"s=p1")],
            &[],
            1,
        ),
        (
            "header rule, new user",
            HEADER_RULE,
            &[(":scheme", b"https")],
            &[],
            1,
        ),
    ];
    for (label, json, pairs, singles, full) in cases {
        let c = config(json);
        let mut source = FakeStream::new(headers(pairs));
        let routed = route(&c, &mut source, &mut Prng::seed_from_u64(1), None, false);
        assert_eq!(
            source.single_reads,
            singles.len(),
            "case {label:?}: {routed:?}"
        );
        assert_eq!(source.full_reads, *full, "case {label:?}");
        if singles.contains(&":scheme") || *label == "header rule, new user" {
            assert!(routed.set_cookie.is_some(), "case {label:?}");
        }
    }
    // Secure over https is read from :scheme, whichever way it was fetched
    for json in [PLAIN, HEADER_RULE] {
        let c = config(json);
        let mut source = FakeStream::new(headers(&[(":scheme", b"https")]));
        let routed = route(&c, &mut source, &mut Prng::seed_from_u64(1), None, false);
        assert_eq!(routed.decision.reason, Reason::New);
        assert!(routed.set_cookie.unwrap().contains("; Secure"), "{json}");
    }
}
