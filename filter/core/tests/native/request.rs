//! The request header view: path, query, headers, cookies, scheme.

use sticky_split_core::request::{Headers, Request};

fn headers(pairs: &[(&str, &[u8])]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect()
}

#[test]
fn lookups() {
    let h = headers(&[
        (":path", b"/v2/items?pool=canary&debug&x=1&pool=other"),
        (":scheme", b"HTTPS"),
        ("x-region", b"us-east"),
        ("accept", b"a"),
        ("accept", b"b"),
        ("cookie", b"a=1"),
        ("cookie", b"session=abc; a=2"),
    ]);
    let r = Request::new(&h);
    assert_eq!(r.path(), b"/v2/items");
    assert_eq!(r.query_param(b"pool"), Some(&b"canary"[..]));
    assert_eq!(r.query_param(b"debug"), Some(&b""[..]));
    assert_eq!(r.query_param(b"missing"), None);
    assert_eq!(r.header("x-region").as_deref(), Some(&b"us-east"[..]));
    assert_eq!(r.header("accept").as_deref(), Some(&b"a,b"[..]));
    assert_eq!(r.header("missing"), None);
    assert_eq!(r.cookie(b"a"), Some(&b"1"[..]));
    assert_eq!(r.cookie(b"session"), Some(&b"abc"[..]));
    assert_eq!(r.cookie_headers().count(), 2);
    assert!(r.is_https());
}

#[test]
fn odd_paths() {
    for (raw, path, q) in [
        (&b""[..], &b""[..], None),
        (b"?", b"", None),
        (b"/?=x", b"/", None),
        (b"/a?b=\xff", b"/a", Some(&b"\xff"[..])),
    ] {
        let h = headers(&[(":path", raw)]);
        let r = Request::new(&h);
        assert_eq!(r.path(), path);
        assert_eq!(r.query_param(b"b"), q);
    }
    let none: Headers = Vec::new();
    assert_eq!(Request::new(&none).path(), b"");
}
