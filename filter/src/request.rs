//! A read-only view of the request headers, as the host hands them over
//! (lowercase names, raw byte values), with the lookups the decision needs.

use std::borrow::Cow;

use crate::cookie;

pub struct Request<'a> {
    headers: &'a [(String, Vec<u8>)],
    path: &'a [u8],
    query: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn new(headers: &'a [(String, Vec<u8>)]) -> Self {
        let full = headers
            .iter()
            .find(|(name, _)| name == ":path")
            .map_or(&b""[..], |(_, v)| v.as_slice());
        let (path, query) = match full.iter().position(|&b| b == b'?') {
            Some(q) => (
                full.get(..q).unwrap_or(full),
                full.get(q + 1..).unwrap_or_default(),
            ),
            None => (full, &b""[..]),
        };
        Request {
            headers,
            path,
            query,
        }
    }

    /// The values of header `name` (lowercase), joined with `,` when it is
    /// repeated, as Envoy's own header matching sees them.
    pub fn header(&self, name: &str) -> Option<Cow<'a, [u8]>> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice());
        let first = values.next()?;
        match values.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = first.to_vec();
                for v in std::iter::once(second).chain(values) {
                    joined.push(b',');
                    joined.extend_from_slice(v);
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    /// Every Cookie header value, in order.
    pub fn cookie_headers(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of cookie `name` across all Cookie headers.
    pub fn cookie(&self, name: &[u8]) -> Option<&'a [u8]> {
        let headers = self.headers;
        headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .find_map(|(_, v)| cookie::values(v, name).next())
    }

    /// The path without the query string, as sent (not normalized).
    pub fn path(&self) -> &'a [u8] {
        self.path
    }

    /// The first value of query parameter `name`, as sent (not
    /// percent-decoded); `Some(b"")` for `?name` or `?name=`.
    pub fn query_param(&self, name: &[u8]) -> Option<&'a [u8]> {
        let query = self.query;
        query.split(|&b| b == b'&').find_map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (pair.get(..eq)?, pair.get(eq + 1..)?),
                None => (pair, &b""[..]),
            };
            (key == name).then_some(value)
        })
    }

    /// Whether Envoy reports the request as https (`:scheme`).
    pub fn is_https(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n == ":scheme" && is_https(v))
    }
}

/// Whether a `:scheme` value is https.
pub fn is_https(scheme: &[u8]) -> bool {
    scheme.eq_ignore_ascii_case(b"https")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
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
        let none: Vec<(String, Vec<u8>)> = Vec::new();
        assert_eq!(Request::new(&none).path(), b"");
    }
}
