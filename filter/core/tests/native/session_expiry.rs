//! Server-side timeouts on an injected clock, for the cases the Envoy test
//! (`tests/test_sessions.py`) used to wait for in real seconds: that test now
//! only shows Envoy's clock reaching the stamp. `native/sessions.rs` covers
//! signed values; these are the unsigned values of the Envoy test's config
//! (a stamp, then the pool name, no MAC), an absolute timeout alone, and the
//! cookie attributes of a timed config.

use sticky_split_core::decide::Reason;

use super::helpers::config;
use super::sessions::{at, value_of};

const T0: u64 = 1_800_000_000;

/// The Envoy test's timeouts (absolute 5 s, idle 4 s, Partitioned), unsigned.
const UNSIGNED: &str = r#"{"pools": [{"name": "pool1", "weight": 80}, {"name": "pool2", "weight": 20}],
    "cookie": {"name": "s", "absoluteTimeout": 5, "idleTimeout": 4, "partitioned": true}}"#;

#[test]
fn unsigned_values_renew_while_active_and_expire_at_the_absolute_timeout() {
    let c = config(UNSIGNED);
    let first = at(&c, None, T0);
    let set = first.set_cookie.unwrap();
    assert!(set.ends_with("; SameSite=Lax; Partitioned"), "{set}");
    let pool = first.decision.pool;
    let mut value = value_of(&set);
    assert!(
        value.ends_with(&format!(".{}", c.pools[pool].name)),
        "{value}"
    );
    // a user active every second: renewed once past half the idle window
    // (at 3 s), not on every response, and kept until the absolute timeout
    let mut renewed_at = vec![];
    for t in 1..=5 {
        let r = at(&c, Some(&value), T0 + t);
        assert_eq!(
            (r.decision.reason, r.decision.pool),
            (Reason::Sticky, pool),
            "t={t}"
        );
        if let Some(set) = r.set_cookie {
            renewed_at.push(t);
            value = value_of(&set);
        }
    }
    assert_eq!(renewed_at, [3], "renewals");
    // past it, the renewed value has expired: the user is assigned again,
    // with a new assignment time (so the next 5 s are theirs)
    let r = at(&c, Some(&value), T0 + 6);
    assert_eq!(r.decision.reason, Reason::Expired);
    let again = value_of(&r.set_cookie.unwrap());
    let r = at(&c, Some(&again), T0 + 6 + 4);
    assert_eq!(
        (r.decision.reason, r.set_cookie.is_some()),
        (Reason::Sticky, true),
        "renewed, not expired"
    );
}

#[test]
fn unsigned_values_expire_when_idle_and_without_a_stamp() {
    let c = config(UNSIGNED);
    let value = value_of(&at(&c, None, T0).set_cookie.unwrap());
    // (label, value, seconds after issue, reason, a new value issued)
    let cases: &[(&str, &str, u64, Reason, bool)] = &[
        (
            "idle for half the idle timeout",
            &value,
            2,
            Reason::Sticky,
            false,
        ),
        (
            "idle for the idle timeout: renewed",
            &value,
            4,
            Reason::Sticky,
            true,
        ),
        ("idle past it", &value, 5, Reason::Expired, true),
        (
            "a plain pool name (no stamp)",
            "pool1",
            0,
            Reason::Expired,
            true,
        ),
        (
            "a plain pool name, later",
            "pool2",
            100,
            Reason::Expired,
            true,
        ),
    ];
    for (label, v, after, reason, issued) in cases {
        let r = at(&c, Some(v), T0 + after);
        assert_eq!(
            (r.decision.reason, r.set_cookie.is_some()),
            (*reason, *issued),
            "{label}"
        );
    }
}

#[test]
fn an_absolute_timeout_alone_never_renews() {
    // the config of the Envoy wiring check: absoluteTimeout 1
    let c = config(
        r#"{"pools": [{"name": "pool1", "weight": 1}], "cookie": {"name": "s", "absoluteTimeout": 1}}"#,
    );
    let value = value_of(&at(&c, None, T0).set_cookie.unwrap());
    let cases: &[(u64, Reason, bool)] = &[
        (0, Reason::Sticky, false),
        (1, Reason::Sticky, false),
        (2, Reason::Expired, true),
    ];
    for (after, reason, issued) in cases {
        let r = at(&c, Some(&value), T0 + after);
        assert_eq!(
            (r.decision.reason, r.set_cookie.is_some()),
            (*reason, *issued),
            "after {after} s"
        );
    }
}
