//! A read-only view of the request headers, as the host hands them over
//! (lowercase names, raw byte values), with the lookups the decision needs.

pub mod cookies;
mod protocol;

pub use protocol::{grpc_subtype, Protocol};

use std::borrow::Cow;

/// Request headers as the host lists them: lowercase name, raw value.
pub type Headers = Vec<(String, Vec<u8>)>;

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

    /// The elements of header `name` (lowercase) read as a list: each copy
    /// of the header, split at commas (a proxy may join copies into one),
    /// without the whitespace around them; empty elements are left out.
    pub fn header_elements(&self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(cookies::trim)
            .filter(|v| !v.is_empty())
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
            .find_map(|(_, v)| cookies::values(v, name).next())
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
