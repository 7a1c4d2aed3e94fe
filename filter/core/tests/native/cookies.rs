//! The Cookie-header scan (against pair-by-pair parsing) and the
//! Set-Cookie template.

use sticky_split_core::cookie::{CookieSpec, SameSite, Secure, SetCookieTemplate};
use sticky_split_core::request::cookies::{find_byte, values};

/// A value without its surrounding double quotes, if it has both.
fn unquote(s: &[u8]) -> &[u8] {
    s.strip_prefix(b"\"")
        .and_then(|inner| inner.strip_suffix(b"\""))
        .unwrap_or(s)
}

fn all(header: &[u8], name: &str) -> Vec<Vec<u8>> {
    values(header, name.as_bytes())
        .map(<[u8]>::to_vec)
        .collect()
}

/// (case, Cookie header, the values of cookie `s` found in it)
type ParseCase<'a> = (&'a str, &'a [u8], &'a [&'a [u8]]);

#[test]
fn parsing_table() {
    let cases: &[ParseCase] = &[
        ("only cookie", b"s=pool1", &[b"pool1"]),
        ("among others", b"a=1; s=pool2; b=2", &[b"pool2"]),
        ("last", b"a=1; s=pool2", &[b"pool2"]),
        ("no space after ;", b"a=1;s=pool2;b=3", &[b"pool2"]),
        ("tabs and spaces", b"a=1;\t s = pool2 \t;b=3", &[b"pool2"]),
        ("quoted", b"s=\"pool1\"", &[b"pool1"]),
        ("lone quote kept", b"s=\"pool1", &[b"\"pool1"]),
        ("empty value", b"s=", &[b""]),
        ("empty quoted", b"s=\"\"", &[b""]),
        (
            "repeated",
            b"s=pool1; s=bogus; s=pool2",
            &[b"pool1", b"bogus", b"pool2"],
        ),
        ("suffix name is another cookie", b"xs=pool1; s-x=pool2", &[]),
        ("case variant is another cookie", b"S=pool1", &[]),
        ("value containing =", b"s=a=b", &[b"a=b"]),
        ("pair without =", b"s; pool1", &[]),
        ("empty header", b"", &[]),
        ("only separators", b";;; ;", &[]),
        (
            "not utf-8 around",
            b"a=\xff\xfe; s=pool1; \xc3\x28=x",
            &[b"pool1"],
        ),
        ("not utf-8 value", b"s=\xffpool", &[b"\xffpool"]),
        ("nul bytes", b"s=po\0ol; s=pool1", &[b"po\0ol", b"pool1"]),
    ];
    for (label, header, want) in cases {
        let got = all(header, "s");
        let want: Vec<Vec<u8>> = want.iter().map(|v| v.to_vec()).collect();
        assert_eq!(got, want, "case {label:?}");
    }
}

/// The definition, pair by pair: what `values` must agree with. (The
/// generated headers hold no whitespace but spaces and tabs, so trimming all
/// ASCII whitespace is the cookie scan's trimming.)
fn values_by_split<'h>(header: &'h [u8], name: &[u8]) -> Vec<&'h [u8]> {
    header
        .split(|&b| b == b';')
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (key, rest) = pair.split_at(eq);
            (!name.is_empty() && key.trim_ascii() == name).then(|| unquote(rest[1..].trim_ascii()))
        })
        .collect()
}

#[test]
fn scan_agrees_with_pair_by_pair_parsing() {
    // headers made of the bytes that matter, from a fixed-seed generator
    let alphabet = b"ss=;; \t\"x\xffa";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..200_000 {
        let len = (next() % 24) as usize;
        let header: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        for name in [&b"s"[..], b"ss", b"x", b"sx"] {
            let got: Vec<&[u8]> = values(&header, name).collect();
            assert_eq!(got, values_by_split(&header, name), "{header:?} {name:?}");
        }
    }
}

#[test]
fn find_byte_agrees_with_a_plain_scan() {
    let hay: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    for start in 0..20 {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 100, 180] {
            let h = &hay[start..start + len];
            for byte in [0u8, 1, 37, 74, 128, 250, 255] {
                assert_eq!(
                    find_byte(h, byte),
                    h.iter().position(|&b| b == byte),
                    "start {start} len {len} byte {byte}"
                );
            }
        }
    }
}

#[test]
fn huge_header_with_many_cookies() {
    let mut header = Vec::new();
    for i in 0..5000 {
        header.extend_from_slice(format!("c{i}=v{i}; ").as_bytes());
    }
    header.extend_from_slice(b"s=pool2");
    assert_eq!(all(&header, "s"), vec![b"pool2".to_vec()]);
}

fn spec(secure: Secure, max_age: u32, domain: Option<&str>, http_only: bool) -> CookieSpec {
    CookieSpec {
        name: "nginx-app-subset".into(),
        max_age,
        path: "/".into(),
        domain: domain.map(str::to_string),
        http_only,
        secure,
        same_site: SameSite::Lax,
        partitioned: false,
    }
}

#[test]
fn formatting_table() {
    let cases: &[(&str, CookieSpec, bool, &str)] = &[
        (
            "defaults over http",
            spec(Secure::Auto, 2_592_000, None, true),
            false,
            "nginx-app-subset=pool1; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax",
        ),
        (
            "auto over https",
            spec(Secure::Auto, 2_592_000, None, true),
            true,
            "nginx-app-subset=pool1; Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=Lax",
        ),
        (
            "always secure over http",
            spec(Secure::Always, 60, Some("example.com"), false),
            false,
            "nginx-app-subset=pool1; Max-Age=60; Path=/; Domain=example.com; Secure; SameSite=Lax",
        ),
        (
            "never secure over https, session cookie",
            spec(Secure::Never, 0, None, true),
            true,
            "nginx-app-subset=pool1; Path=/; HttpOnly; SameSite=Lax",
        ),
    ];
    for (label, spec, https, want) in cases {
        let t = SetCookieTemplate::new(spec);
        assert_eq!(t.render("pool1", *https), *want, "case {label:?}");
    }
}

#[test]
fn formatted_cookie_parses_back() {
    let t = SetCookieTemplate::new(&spec(Secure::Auto, 10, None, true));
    let header = t.render("pool-7", false);
    let pair = header.split(';').next().unwrap();
    assert_eq!(
        all(pair.as_bytes(), "nginx-app-subset"),
        vec![b"pool-7".to_vec()]
    );
}
