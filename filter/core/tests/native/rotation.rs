//! Rotating the signing key: values of a previous key keep their pool and
//! are issued again under the current key, once; unknown and dropped keys
//! are forgeries.

use rand_core::SeedableRng;
use sticky_split_core::config::{Config, ConfigError};
use sticky_split_core::decide::Reason;
use sticky_split_core::rng::Prng;
use sticky_split_core::stream::{route, Routed};

use super::helpers::headers;
use sticky_split_core::testing::FakeStream;

const A: &[u8] = b"key A, the one users were signed with";
const B: &[u8] = b"key B, the new current key...........";
const C: &[u8] = b"key C, a key nobody configured........";

fn env(name: &str) -> Option<Vec<u8>> {
    match name {
        "A" => Some(A.to_vec()),
        "B" => Some(B.to_vec()),
        "C" => Some(C.to_vec()),
        "SHORT" => Some(b"short".to_vec()),
        _ => None,
    }
}

fn load(cookie: &str) -> Result<Config, ConfigError> {
    let json = format!(
        r#"{{"pools": [{{"name": "p1", "weight": 1}}, {{"name": "p2", "weight": 1}}],
            "cookie": {{"name": "s", {cookie}}}, "sessionHeader": "x-session"}}"#
    );
    Config::from_json_with_env(json.as_bytes(), env)
}

fn config(cookie: &str) -> Config {
    load(cookie).unwrap_or_else(|e| panic!("{e}"))
}

fn visit(c: &Config, pairs: &[(&str, &[u8])], seed: u64) -> Routed {
    route(
        c,
        &mut FakeStream::new(headers(pairs)),
        &mut Prng::seed_from_u64(seed),
        None,
        false,
    )
}

/// The affinity value a Set-Cookie header carries.
fn value_of(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

/// 200 users placed under key A: (pool, value).
fn signed_with_a() -> Vec<(usize, String)> {
    let a = config(r#""signingKeyEnv": "A""#);
    (0..200)
        .map(|seed| {
            let r = visit(&a, &[], seed);
            (r.decision.pool, value_of(r.set_cookie.as_deref().unwrap()))
        })
        .collect()
}

#[test]
fn previous_key_users_keep_their_pool_and_are_resigned_once() {
    let users = signed_with_a();
    let rotated = config(r#""signingKeyEnv": "B", "previousSigningKeyEnvs": ["C", "A"]"#);
    let b_only = config(r#""signingKeyEnv": "B""#);
    let mut stayed = 0;
    for (seed, (pool, value)) in users.iter().enumerate() {
        let cookie = format!("s={value}");
        let r = visit(&rotated, &[("cookie", cookie.as_bytes())], seed as u64);
        assert_eq!(
            (r.decision.pool, r.decision.reason),
            (*pool, Reason::Resigned)
        );
        stayed += usize::from(r.decision.pool == *pool);
        let resigned = value_of(r.set_cookie.as_deref().expect("re-issued"));
        assert_ne!(&resigned, value);
        assert_eq!(r.session_value.as_deref(), Some(resigned.as_str()));
        // signed with B now: pinned with no new cookie, also once A is dropped
        for c in [&rotated, &b_only] {
            let cookie = format!("s={resigned}");
            let again = visit(c, &[("cookie", cookie.as_bytes())], seed as u64);
            assert_eq!(
                (again.decision.pool, again.decision.reason),
                (*pool, Reason::Sticky)
            );
            assert_eq!(again.set_cookie, None);
        }
        // the session header gets the same treatment
        let by_header = visit(&rotated, &[("x-session", value.as_bytes())], seed as u64);
        assert_eq!(
            (by_header.decision.pool, by_header.decision.reason),
            (*pool, Reason::Resigned)
        );
    }
    assert_eq!(stayed, 200);
}

#[test]
fn unknown_and_dropped_keys_are_forgeries() {
    let users = signed_with_a();
    let c_users: Vec<String> = (0..20)
        .map(|seed| {
            let c = config(r#""signingKeyEnv": "C""#);
            value_of(visit(&c, &[], seed).set_cookie.as_deref().unwrap())
        })
        .collect();
    let rotated = config(r#""signingKeyEnv": "B", "previousSigningKeyEnvs": ["A"]"#);
    let dropped = config(r#""signingKeyEnv": "B""#);
    for value in &c_users {
        let cookie = format!("s={value}");
        let r = visit(&rotated, &[("cookie", cookie.as_bytes())], 1);
        assert_eq!(
            r.decision.reason,
            Reason::Forged,
            "signed by C, which is not listed"
        );
    }
    for (_, value) in &users {
        let cookie = format!("s={value}");
        let r = visit(&dropped, &[("cookie", cookie.as_bytes())], 1);
        assert_eq!(r.decision.reason, Reason::Forged, "A was dropped");
        assert!(r.set_cookie.is_some());
    }
    // a value of A tampered with is no better under rotation
    let (_, value) = &users[0];
    let tampered = value.replacen("p", "q", 1);
    let cookie = format!("s={tampered}");
    assert_eq!(
        visit(&rotated, &[("cookie", cookie.as_bytes())], 1)
            .decision
            .reason,
        Reason::Forged
    );
}

#[test]
fn previous_keys_are_checked_like_the_current_one() {
    // (case, cookie fields, field, words of the reason)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "unset",
            r#""signingKeyEnv": "B", "previousSigningKeyEnvs": ["A", "NOPE"]"#,
            "cookie.previousSigningKeyEnvs[1]",
            "NOPE is not set",
        ),
        (
            "too short",
            r#""signingKeyEnv": "B", "previousSigningKeyEnvs": ["SHORT"]"#,
            "cookie.previousSigningKeyEnvs[0]",
            "5 bytes; at least 16",
        ),
        (
            "no current key",
            r#""previousSigningKeyEnvs": ["A"]"#,
            "cookie.previousSigningKeyEnvs",
            "needs cookie.signingKeyEnv",
        ),
        (
            "the current key again",
            r#""signingKeyEnv": "B", "previousSigningKeyEnvs": ["B"]"#,
            "cookie.previousSigningKeyEnvs[0]",
            "signingKeyEnv itself",
        ),
        (
            "five keys",
            r#""signingKeyEnv": "B", "previousSigningKeyEnvs": ["A", "C", "A", "C", "A"]"#,
            "cookie.previousSigningKeyEnvs",
            "at most 4",
        ),
        (
            "not a list",
            r#""signingKeyEnv": "B", "previousSigningKeyEnvs": "A""#,
            "cookie.previousSigningKeyEnvs",
            "expected a sequence",
        ),
    ];
    for (label, cookie, field, words) in cases {
        let e = load(cookie)
            .err()
            .unwrap_or_else(|| panic!("{label}: accepted"));
        assert_eq!(e.field, *field, "{label}: {e}");
        assert!(e.reason.contains(words), "{label}: {e}");
        assert!(!e.to_string().contains("key A"), "a key leaked: {e}");
    }
    assert!(load(r#""signingKeyEnv": "B", "previousSigningKeyEnvs": []"#).is_ok());
    // the default, written out, needs no current key
    assert!(load(r#""previousSigningKeyEnvs": []"#).is_ok());
}
