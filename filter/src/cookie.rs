//! Cookie header parsing (bytes in, never a panic) and Set-Cookie formatting.

use crate::config::{CookieSpec, Secure};

/// Every value of the cookie called `name` in one Cookie header, in order.
///
/// The header is treated as bytes: `;`-separated pairs, optional whitespace
/// around names and values, an optional pair of double quotes around a value
/// (RFC 6265 allows them; they are not part of the value). Pairs without `=`
/// and pairs whose bytes are not UTF-8 are skipped as other cookies would be.
/// Names compare exactly (cookie names are case-sensitive); an empty name
/// has no values.
///
/// Headers run to kilobytes of other cookies, so the scan does not split
/// every pair: it jumps between occurrences of the name's first byte (eight
/// bytes per step) and looks at the pair only where the name starts one.
pub fn values<'h, 'n>(
    header: &'h [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let first = *name.first()?;
        loop {
            let at = from + find_byte(header.get(from..)?, first)?;
            from = at + 1;
            if let Some((value, end)) = pair_at(header, at, name) {
                from = end;
                return Some(value);
            }
        }
    })
}

/// The value of the pair whose name is `name` starting at `at`, and where the
/// pair ends; `None` when `name` does not start a pair there.
fn pair_at<'h>(header: &'h [u8], at: usize, name: &[u8]) -> Option<(&'h [u8], usize)> {
    // the name must be the first non-blank bytes after `;` (or the start)
    let before = header.get(..at)?;
    if !matches!(trim(before).last(), None | Some(b';')) {
        return None;
    }
    let rest = header.get(at..)?.strip_prefix(name)?;
    let len = find_byte(rest, b';').unwrap_or(rest.len());
    // blanks, then `=`; anything else means a longer name or no value
    let value = trim_start(rest.get(..len)?).strip_prefix(b"=")?;
    Some((unquote(trim(value)), at + name.len() + len))
}

/// Position of the first `byte` in `hay`, eight bytes per step (SWAR).
pub fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(byte));
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // a zero byte in x is a match: the classic has-zero-byte test
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| offset + i)
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// The attribute part of the Set-Cookie header, rendered once per config for
/// plain and for https requests; per response only `name=value` is added.
#[derive(Debug, Clone)]
pub struct SetCookieTemplate {
    prefix: String,
    plain: String,
    secure: String,
}

impl SetCookieTemplate {
    pub fn new(spec: &CookieSpec) -> Self {
        let mut attrs = String::new();
        if spec.max_age > 0 {
            attrs.push_str(&format!("; Max-Age={}", spec.max_age));
        }
        attrs.push_str("; Path=");
        attrs.push_str(&spec.path);
        if let Some(domain) = &spec.domain {
            attrs.push_str("; Domain=");
            attrs.push_str(domain);
        }
        if spec.http_only {
            attrs.push_str("; HttpOnly");
        }
        let same_site = format!("; SameSite={}", spec.same_site.as_str());
        let with_secure = format!("{attrs}; Secure{same_site}");
        let without_secure = format!("{attrs}{same_site}");
        let (plain, secure) = match spec.secure {
            Secure::Always => (with_secure.clone(), with_secure),
            Secure::Never => (without_secure.clone(), without_secure),
            Secure::Auto => (without_secure, with_secure),
        };
        SetCookieTemplate {
            prefix: format!("{}=", spec.name),
            plain,
            secure,
        }
    }

    /// `name=value; attributes`, with Secure chosen by `https` when the config
    /// says `"auto"`.
    pub fn render(&self, value: &str, https: bool) -> String {
        let attrs = if https { &self.secure } else { &self.plain };
        let mut out = String::with_capacity(self.prefix.len() + value.len() + attrs.len());
        out.push_str(&self.prefix);
        out.push_str(value);
        out.push_str(attrs);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SameSite;

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

    /// The definition, pair by pair: what `values` must agree with.
    fn values_by_split<'h>(header: &'h [u8], name: &[u8]) -> Vec<&'h [u8]> {
        header
            .split(|&b| b == b';')
            .filter_map(|pair| {
                let eq = pair.iter().position(|&b| b == b'=')?;
                let (key, rest) = pair.split_at(eq);
                (!name.is_empty() && trim(key) == name).then(|| unquote(trim(&rest[1..])))
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
            signing_key_env: None,
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
}
