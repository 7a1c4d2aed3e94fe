//! Rollout controls, natively: rules, hashing properties, ramp, evict,
//! generations, signed cookies, and the precedence between them.

use rand_core::{Rng, SeedableRng};
use sticky_split_core::choice::key_hash;
use sticky_split_core::config::Config;
use sticky_split_core::cookie::Payload;
use sticky_split_core::decide::Reason;
use sticky_split_core::rng::Prng;

use super::helpers::{assert_fits, config, name, run};

const SEED_RULES: &str = r#"{
  "pools": [
    {"name": "stable", "weight": 100}, {"name": "v2", "weight": 0}, {"name": "us", "weight": 0},
    {"name": "mobile", "weight": 0}, {"name": "canary", "weight": 0}, {"name": "jason", "weight": 0}
  ],
  "cookie": {"name": "s", "signingKeyEnv": "KEY"},
  "rules": [
    {"match": {"headers": [{"name": "user-group", "exact": "beta-testers"}]}, "pool": "v2"},
    {"match": {"headers": [{"name": "End-User", "exact": "jason"}]}, "pool": "jason"},
    {"match": {"headers": [{"name": "x-region", "regex": "us-.*"}]}, "pool": "us"},
    {"match": {"headers": [{"name": "user-agent", "prefix": "Mobile"}]}, "pool": "mobile"},
    {"match": {"path": {"prefix": "/v2/"}}, "pool": "v2"},
    {"match": {"query": [{"name": "pool", "exact": "canary"}]}, "pool": "canary", "sticky": true},
    {"match": {"cookies": [{"name": "beta", "present": true}], "headers": [{"name": "x-debug", "contains": "yes"}]}, "pool": "canary"},
    {"match": {"headers": [{"name": "x-tenant", "suffix": ".internal"}], "path": {"regex": "/api/[0-9]+"}}, "pool": "v2"}
  ]
}"#;

/// (case, request headers, expected pool, whether a cookie is written)
type RuleCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, bool);
/// (case, request headers, expected pool if fixed, reason)
type PrecedenceCase<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>, Reason);

#[test]
fn rules_table() {
    let c = config(SEED_RULES);
    let mut rng = Prng::seed_from_u64(1);
    let cases: &[RuleCase] = &[
        (
            "beta testers",
            &[("user-group", "beta-testers")],
            "v2",
            false,
        ),
        (
            "not quite beta testers",
            &[("user-group", "beta-testers-2")],
            "stable",
            true,
        ),
        (
            "end-user jason (name case-insensitive in config)",
            &[("end-user", "jason")],
            "jason",
            false,
        ),
        ("region regex", &[("x-region", "us-east-1")], "us", false),
        (
            "region regex is a full match",
            &[("x-region", "eu-us-1")],
            "stable",
            true,
        ),
        (
            "mobile agent",
            &[("user-agent", "Mobile Safari")],
            "mobile",
            false,
        ),
        (
            "agent prefix only",
            &[("user-agent", "Safari Mobile")],
            "stable",
            true,
        ),
        ("v2 path", &[(":path", "/v2/items?x=1")], "v2", false),
        ("v2 without slash", &[(":path", "/v2")], "stable", true),
        (
            "query pool=canary is sticky",
            &[(":path", "/shop?a=1&pool=canary")],
            "canary",
            true,
        ),
        (
            "query value must match",
            &[(":path", "/shop?pool=canary2")],
            "stable",
            true,
        ),
        (
            "all conditions hold",
            &[("cookie", "beta=1"), ("x-debug", "say yes please")],
            "canary",
            false,
        ),
        (
            "one condition fails",
            &[("cookie", "beta=1"), ("x-debug", "no")],
            "stable",
            true,
        ),
        (
            "suffix and path regex",
            &[("x-tenant", "a.internal"), (":path", "/api/42")],
            "v2",
            false,
        ),
        (
            "path regex full match",
            &[("x-tenant", "a.internal"), (":path", "/api/42/x")],
            "stable",
            true,
        ),
        (
            "first matching rule wins",
            &[("user-group", "beta-testers"), ("x-region", "us-1")],
            "v2",
            false,
        ),
        (
            "rule beats the affinity cookie",
            &[("x-region", "us-1"), ("cookie", "s=stable")],
            "us",
            false,
        ),
    ];
    for (label, pairs, pool, cookie) in cases {
        let d = run(&c, pairs, &mut rng);
        assert_eq!(name(&c, &d), *pool, "case {label:?}");
        assert_eq!(d.cookie.is_some(), *cookie, "case {label:?}");
        if d.reason == Reason::Rule && *cookie {
            assert_eq!(d.cookie, Some(Payload::Pool(d.pool)), "case {label:?}");
        }
    }
    // the sticky rule's cookie then pins the user without the query string
    let d = run(&c, &[(":path", "/?pool=canary")], &mut rng);
    let v = c.encode_cookie(d.cookie.unwrap()).unwrap();
    let d = run(&c, &[("cookie", &format!("s={v}"))], &mut rng);
    // (canary has weight 0 here: reachable only by the rule, then pinned)
    assert_eq!(
        (name(&c, &d), d.reason),
        ("canary".into(), Reason::DrainedPinned)
    );
}

fn pools_json(weights: &[(&str, u32)]) -> String {
    let p: Vec<String> = weights
        .iter()
        .map(|(n, w)| format!(r#"{{"name": "{n}", "weight": {w}}}"#))
        .collect();
    format!("[{}]", p.join(","))
}

fn hashed(weights: &[(&str, u32)], keys: &[u64]) -> Vec<String> {
    let c = config(&format!(r#"{{"pools": {}}}"#, pools_json(weights)));
    keys.iter()
        .map(|&k| c.pools[c.pool_for_key(k)].name.clone())
        .collect()
}

fn random_keys(n: usize, seed: u64) -> Vec<u64> {
    let mut rng = Prng::seed_from_u64(seed);
    (0..n)
        .map(|_| key_hash(format!("user-{}", rng.next_u64()).as_bytes()))
        .collect()
}

#[test]
fn hashing_splits_keys_by_weight() {
    for (seed, weights) in [
        vec![("a", 80), ("b", 20)],
        vec![("a", 50), ("b", 30), ("c", 20)],
        vec![("a", 1), ("b", 0), ("c", 1), ("d", 2)],
    ]
    .into_iter()
    .enumerate()
    {
        let keys = random_keys(200_000, seed as u64);
        let got = hashed(&weights, &keys);
        let counts: Vec<u64> = weights
            .iter()
            .map(|(n, _)| got.iter().filter(|g| g == n).count() as u64)
            .collect();
        let w: Vec<u64> = weights.iter().map(|(_, w)| u64::from(*w)).collect();
        assert_fits(&counts, &w, &format!("{weights:?}"));
    }
}

#[test]
fn hashing_moves_keys_only_into_a_pool_that_grows_and_only_out_of_one_that_shrinks() {
    let keys = random_keys(50_000, 7);
    let before = hashed(&[("a", 50), ("b", 30), ("c", 20)], &keys);
    let grown = hashed(&[("a", 50), ("b", 30), ("c", 40)], &keys);
    let shrunk = hashed(&[("a", 50), ("b", 10), ("c", 20)], &keys);
    let mut moved_in = 0;
    let mut moved_out = 0;
    for i in 0..keys.len() {
        if before[i] != grown[i] {
            assert_eq!(
                grown[i], "c",
                "a key moved between the pools that did not change"
            );
            moved_in += 1;
        }
        if before[i] != shrunk[i] {
            assert_eq!(before[i], "b", "a key left a pool that did not shrink");
            moved_out += 1;
        }
    }
    // c: 20% -> 40/120 = 33.3%: 13.3% of all keys move in; b: 30% -> 10/80 = 12.5%: 17.5% move out
    assert_fits(
        &[moved_in, keys.len() as u64 - moved_in],
        &[2, 13],
        "moved into c",
    );
    assert_fits(
        &[moved_out, keys.len() as u64 - moved_out],
        &[7, 33],
        "moved out of b",
    );
}

#[test]
fn adding_or_removing_a_pool_moves_only_its_keys() {
    let keys = random_keys(50_000, 8);
    let before = hashed(&[("a", 50), ("b", 50)], &keys);
    let added = hashed(&[("a", 50), ("new", 25), ("b", 50)], &keys);
    for i in 0..keys.len() {
        if before[i] != added[i] {
            assert_eq!(added[i], "new");
        }
    }
    let removed = hashed(&[("b", 50)], &keys);
    for i in 0..keys.len() {
        if before[i] == "b" {
            assert_eq!(removed[i], "b");
        }
    }
}

#[test]
fn hash_on_header_and_cookie_is_deterministic() {
    let c = config(
        r#"{"pools": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}], "hashOn": {"header": "X-User-Id"}}"#,
    );
    let mut rng = Prng::seed_from_u64(9);
    let mut seen = std::collections::HashSet::new();
    for u in 0..200 {
        let id = format!("user-{u}");
        let d1 = run(&c, &[("x-user-id", &id)], &mut rng);
        let d2 = run(&c, &[("x-user-id", &id)], &mut rng);
        assert_eq!((d1.reason, d1.cookie), (Reason::Hash, None));
        assert_eq!(d1.pool, d2.pool);
        seen.insert(d1.pool);
    }
    assert_eq!(seen.len(), 2);
    // an empty key is no key
    assert_eq!(run(&c, &[("x-user-id", "")], &mut rng).reason, Reason::New);
    let c = config(
        r#"{"pools": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}], "hashOn": {"cookie": "session"}}"#,
    );
    let d = run(&c, &[("cookie", "x=1; session=abc")], &mut rng);
    assert_eq!(d.reason, Reason::Hash);
    assert_eq!(d.pool, c.pool_for_key(key_hash(b"abc")));
}

/// A canary ramp 10% -> 20% -> 50% -> 0% over 30,000 ramp-mode users, as
/// cookies replayed against each new config.
#[test]
fn ramp_moves_exactly_the_needed_share_and_rollback_returns_everyone() {
    let cfg = |canary: u32| {
        config(&format!(
            r#"{{"pools": {}, "affinity": "ramp", "cookie": {{"name": "s"}}}}"#,
            pools_json(&[("stable", 100 - canary), ("canary", canary)])
        ))
    };
    let mut rng = Prng::seed_from_u64(11);
    let first = cfg(10);
    let users: Vec<String> = (0..30_000)
        .map(|_| {
            let d = run(&first, &[], &mut rng);
            assert_eq!(d.reason, Reason::New);
            first.encode_cookie(d.cookie.unwrap()).unwrap()
        })
        .collect();
    let place = |c: &Config, rng: &mut Prng| -> Vec<usize> {
        users
            .iter()
            .map(|v| {
                let d = run(c, &[("cookie", &format!("s={v}"))], rng);
                assert_eq!((d.reason, d.cookie), (Reason::Ramp, None));
                d.pool
            })
            .collect()
    };
    let at10 = place(&first, &mut rng);
    let n = users.len() as u64;
    let canary10 = at10.iter().filter(|&&p| p == 1).count() as u64;
    assert_fits(&[n - canary10, canary10], &[90, 10], "10% canary");
    let mut previous = at10.clone();
    for (weight, moved_share) in [(20u32, [8u64, 1]), (50, [5, 3])] {
        let now = place(&cfg(weight), &mut rng);
        let stable_before = previous.iter().filter(|&&p| p == 0).count() as u64;
        let mut moved = 0;
        for (b, a) in previous.iter().zip(&now) {
            assert!(
                !(*b == 1 && *a == 0),
                "a canary user went back to stable during the ramp"
            );
            moved += u64::from(*b == 0 && *a == 1);
        }
        // among stable users, (new - old) / (1 - old) move: 1/9 at 10->20, 3/8 at 20->50
        assert_fits(
            &[stable_before - moved, moved],
            &moved_share,
            &format!("moved at {weight}%"),
        );
        previous = now;
    }
    let rolled_back = place(&cfg(0), &mut rng);
    assert!(
        rolled_back.iter().all(|&p| p == 0),
        "rollback to 0 returns every user to stable"
    );
}

#[test]
fn evicted_pool_users_are_moved_and_their_cookie_rewritten() {
    let c = config(
        r#"{"pools": [{"name": "old", "weight": 0, "evict": true}, {"name": "new", "weight": 1}], "cookie": {"name": "s"}}"#,
    );
    let mut rng = Prng::seed_from_u64(12);
    let d = run(&c, &[("cookie", "s=old")], &mut rng);
    assert_eq!(
        (name(&c, &d), d.reason, d.cookie),
        ("new".into(), Reason::Evicted, Some(Payload::Pool(1)))
    );
    // a drained (not evicted) pool keeps its users
    let c = config(
        r#"{"pools": [{"name": "old", "weight": 0}, {"name": "new", "weight": 1}], "cookie": {"name": "s"}}"#,
    );
    assert_eq!(
        run(&c, &[("cookie", "s=old")], &mut rng).reason,
        Reason::DrainedPinned
    );
}

#[test]
fn a_new_generation_reassigns_everyone_once() {
    let g = |gen: &str| {
        config(&format!(
            r#"{{"pools": {}, "cookie": {{"name": "s"}}, "generation": "{gen}"}}"#,
            pools_json(&[("a", 1), ("b", 1)])
        ))
    };
    let (g1, g2) = (g("g1"), g("g2"));
    let mut rng = Prng::seed_from_u64(13);
    for _ in 0..100 {
        let d = run(&g1, &[], &mut rng);
        let v1 = g1.encode_cookie(d.cookie.unwrap()).unwrap();
        assert!(v1.starts_with("g1."));
        assert_eq!(
            run(&g1, &[("cookie", &format!("s={v1}"))], &mut rng).reason,
            Reason::Sticky
        );
        // the generation changes: reassigned once, then sticky again
        let d = run(&g2, &[("cookie", &format!("s={v1}"))], &mut rng);
        assert_eq!(d.reason, Reason::Reassigned);
        let v2 = g2.encode_cookie(d.cookie.unwrap()).unwrap();
        assert_eq!(
            run(&g2, &[("cookie", &format!("s={v2}"))], &mut rng).reason,
            Reason::Sticky
        );
    }
    // cookies from before generations were configured are stale too
    assert_eq!(
        run(&g2, &[("cookie", "s=a")], &mut rng).reason,
        Reason::Reassigned
    );
}

#[test]
fn signed_cookies_reject_forgeries() {
    let c = config(
        r#"{"pools": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}], "cookie": {"name": "s", "signingKeyEnv": "KEY"}}"#,
    );
    let mut rng = Prng::seed_from_u64(14);
    let d = run(&c, &[], &mut rng);
    let genuine = c.encode_cookie(d.cookie.unwrap()).unwrap();
    let d2 = run(&c, &[("cookie", &format!("s={genuine}"))], &mut rng);
    assert_eq!(
        (d2.pool, d2.reason, d2.cookie),
        (d.pool, Reason::Sticky, None)
    );
    let (body, mac) = genuine.rsplit_once('.').unwrap();
    let other = if body == "a" { "b" } else { "a" };
    for forged in [
        "a".to_string(),
        "b".into(),
        format!("{other}.{mac}"),
        format!("{body}.{}", "A".repeat(22)),
    ] {
        let d = run(&c, &[("cookie", &format!("s={forged}"))], &mut rng);
        assert_eq!(d.reason, Reason::Forged, "{forged}");
        assert!(d.cookie.is_some());
    }
    // a forged cookie next to a genuine one does not hide the genuine one
    let d3 = run(&c, &[("cookie", &format!("s=a; s={genuine}"))], &mut rng);
    assert_eq!((d3.pool, d3.reason), (d.pool, Reason::Sticky));
}

/// rules -> valid affinity cookie -> hashOn key -> weighted pick, and the
/// reason of each.
#[test]
fn precedence_table() {
    let c = config(
        r#"{"pools": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}, {"name": "gone", "weight": 0, "evict": true}],
            "cookie": {"name": "s"}, "hashOn": {"header": "x-user"},
            "rules": [{"match": {"headers": [{"name": "x-beta", "present": true}]}, "pool": "b"}]}"#,
    );
    let mut rng = Prng::seed_from_u64(15);
    let hash_pool = c.pools[c.pool_for_key(key_hash(b"u1"))].name.clone();
    let cases: &[PrecedenceCase] = &[
        (
            "rule over cookie and key",
            &[("x-beta", ""), ("cookie", "s=a"), ("x-user", "u1")],
            Some("b"),
            Reason::Rule,
        ),
        (
            "cookie over key",
            &[("cookie", "s=a"), ("x-user", "u1")],
            Some("a"),
            Reason::Sticky,
        ),
        (
            "key when no cookie",
            &[("x-user", "u1")],
            Some(hash_pool.as_str()),
            Reason::Hash,
        ),
        (
            "key when the cookie is unknown",
            &[("cookie", "s=zzz"), ("x-user", "u1")],
            Some(hash_pool.as_str()),
            Reason::Hash,
        ),
        (
            "key when the cookie is evicted",
            &[("cookie", "s=gone"), ("x-user", "u1")],
            Some(hash_pool.as_str()),
            Reason::Hash,
        ),
        ("pick when nothing else", &[], None, Reason::New),
        (
            "evicted without a key",
            &[("cookie", "s=gone")],
            None,
            Reason::Evicted,
        ),
        (
            "unknown without a key",
            &[("cookie", "s=zzz")],
            None,
            Reason::Reassigned,
        ),
        (
            "worst problem named",
            &[("cookie", "s=zzz; s=gone")],
            None,
            Reason::Evicted,
        ),
    ];
    for (label, pairs, pool, reason) in cases {
        let d = run(&c, pairs, &mut rng);
        assert_eq!(d.reason, *reason, "case {label:?}");
        if let Some(p) = pool {
            assert_eq!(name(&c, &d), *p, "case {label:?}");
        }
        assert_ne!(name(&c, &d), "gone", "case {label:?}");
    }
    // every reason has a stable, distinct name
    let names: std::collections::HashSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), Reason::ALL.len());
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}

/// A dark launch: p3 has weight 0 and only a rule (a tester's header) sends
/// users there; p2 is drained (weight 0, users pinned while it had weight).
const DARK: &str = r#"{"pools": [{"name": "p1", "weight": 1}, {"name": "p2", "weight": 0}, {"name": "p3", "weight": 0}],
    "cookie": {"name": "ss"SIGNING}, "sessionHeader": "x-ss",
    "rules": [{"match": {"headers": [{"name": "x-tester", "exact": "yes"}]}, "pool": "p3"STICKY}]}"#;

fn dark(signed: bool, sticky: bool) -> String {
    DARK.replace(
        "SIGNING",
        if signed {
            r#", "signingKeyEnv": "KEY""#
        } else {
            ""
        },
    )
    .replace("STICKY", if sticky { r#", "sticky": true"# } else { "" })
}

/// (case, request headers, pool, reason)
type ClaimCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, Reason);

#[test]
fn a_pool_only_rules_reach_stays_closed_to_unsigned_values() {
    let c = config(&dark(false, false));
    let mut rng = Prng::seed_from_u64(1);
    // (case, request, pool, reason)
    let cases: &[ClaimCase] = &[
        ("the tester", &[("x-tester", "yes")], "p3", Reason::Rule),
        (
            "its name in the cookie",
            &[("cookie", "ss=p3")],
            "p1",
            Reason::Reassigned,
        ),
        (
            "its name in the session header",
            &[("x-ss", "p3")],
            "p1",
            Reason::Reassigned,
        ),
        (
            "a drained pool keeps its pinned users",
            &[("cookie", "ss=p2")],
            "p2",
            Reason::DrainedPinned,
        ),
        (
            "a pool with weight",
            &[("cookie", "ss=p1")],
            "p1",
            Reason::Sticky,
        ),
    ];
    for (case, pairs, pool, reason) in cases {
        let d = run(&c, pairs, &mut rng);
        assert_eq!(
            (name(&c, &d).as_str(), d.reason),
            (*pool, *reason),
            "{case}"
        );
        assert_eq!(
            d.cookie.is_some(),
            *reason == Reason::Reassigned,
            "{case}: a new value is issued"
        );
    }
}

#[test]
fn a_signed_dark_launch_keeps_the_users_its_sticky_rule_pinned() {
    let c = config(&dark(true, true));
    let mut rng = Prng::seed_from_u64(1);
    let tester = run(&c, &[("x-tester", "yes")], &mut rng);
    assert_eq!(
        (name(&c, &tester).as_str(), tester.reason),
        ("p3", Reason::Rule)
    );
    let issued = c.encode_cookie(tester.cookie.unwrap()).unwrap();
    // the value the gateway issued keeps working without the header
    let back = run(&c, &[("cookie", &format!("ss={issued}"))], &mut rng);
    assert_eq!(
        (name(&c, &back).as_str(), back.reason),
        ("p3", Reason::DrainedPinned)
    );
    let by_header = run(&c, &[("x-ss", &issued)], &mut rng);
    assert_eq!(name(&c, &by_header), "p3");
    // a client's own claim is forged
    for pairs in [[("cookie", "ss=p3")], [("x-ss", "p3")]] {
        let d = run(&c, &pairs, &mut rng);
        assert_eq!(
            (name(&c, &d).as_str(), d.reason),
            ("p1", Reason::Forged),
            "{pairs:?}"
        );
    }
}

#[test]
fn a_sticky_rule_to_a_weight_0_pool_needs_signing() {
    let err = Config::from_json_with_env(dark(false, true).as_bytes(), |_| None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("rules[0].sticky: pins users to pool \"p3\", which has weight 0"),
        "{text}"
    );
    assert!(text.contains("set cookie.signingKeyEnv"), "{text}");
    // with weight, a sticky rule needs no key
    let weighted = dark(false, true).replace(
        r#"{"name": "p3", "weight": 0}"#,
        r#"{"name": "p3", "weight": 1}"#,
    );
    assert!(Config::from_json_with_env(weighted.as_bytes(), |_| None).is_ok());
}
