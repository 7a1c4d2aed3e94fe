//! Character classes for names.

use sticky_split_core::token::{is_cookie_domain, is_cookie_path, is_token, is_visible_ascii};

#[test]
fn tokens() {
    let cases: &[(&str, bool)] = &[
        ("pool1", true),
        ("canary-v2.1_x", true),
        ("a|b~c", true),
        ("", false),
        ("pool 1", false),
        ("pool;1", false),
        ("pool\r\nx-evil: 1", false),
        ("pool\"", false),
        ("pool,2", false),
        ("pöol", false),
        ("a/b", false),
        ("a=b", false),
    ];
    for (input, want) in cases {
        assert_eq!(is_token(input), *want, "is_token({input:?})");
    }
}

#[test]
fn cookie_paths_and_domains() {
    assert!(is_cookie_path("/"));
    assert!(is_cookie_path("/app/v2"));
    assert!(!is_cookie_path("app"));
    assert!(!is_cookie_path("/a;b"));
    assert!(!is_cookie_path("/a b"));
    assert!(is_cookie_domain("example.com"));
    assert!(is_cookie_domain(".example.com"));
    assert!(is_cookie_domain("a-b.example.com"));
    assert!(!is_cookie_domain(""));
    assert!(!is_cookie_domain("."));
    assert!(!is_cookie_domain("example..com"));
    assert!(!is_cookie_domain("-bad.example.com"));
    assert!(!is_cookie_domain("exa mple.com"));
    assert!(!is_cookie_domain("example.com; Secure"));
}

#[test]
fn visible_ascii() {
    assert!(is_visible_ascii(
        "outbound|80|pool1|svc.ns.svc.cluster.local"
    ));
    assert!(!is_visible_ascii("a b"));
    assert!(!is_visible_ascii(""));
    assert!(!is_visible_ascii("a\nb"));
}
