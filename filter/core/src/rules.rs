//! Override rules, compiled: an ordered list; the first rule whose
//! conditions all hold picks the pool. Conditions on headers, query
//! parameters, cookies and the path, each with one way of matching a string.
//! The JSON form and its checks live in `config`.

use regex_lite::Regex;

use crate::request::Request;

/// How one condition matches a value (bytes as sent).
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Contains(Vec<u8>),
    /// Anchored at both ends: matches the whole value, as Envoy and Istio do.
    Regex(Regex),
    /// `true`: the value is there (even empty); `false`: it is absent.
    Present(bool),
}

impl StringMatch {
    /// Compiles `pattern` to match whole values; the error text is one line.
    pub fn regex(pattern: &str) -> Result<StringMatch, String> {
        Regex::new(&format!("^(?:{pattern})$"))
            .map(StringMatch::Regex)
            .map_err(|e| e.to_string().replace('\n', " "))
    }

    pub fn matches(&self, value: Option<&[u8]>) -> bool {
        match (self, value) {
            (StringMatch::Present(want), v) => v.is_some() == *want,
            (_, None) => false,
            (StringMatch::Exact(s), Some(v)) => v == s.as_slice(),
            (StringMatch::Prefix(s), Some(v)) => v.starts_with(s),
            (StringMatch::Suffix(s), Some(v)) => v.ends_with(s),
            (StringMatch::Contains(s), Some(v)) => {
                s.is_empty() || v.windows(s.len()).any(|w| w == s.as_slice())
            }
            (StringMatch::Regex(re), Some(v)) => re.is_match(&String::from_utf8_lossy(v)),
        }
    }
}

/// A condition on one named header, query parameter or cookie.
#[derive(Debug, Clone)]
pub struct NamedMatch {
    /// Header names are lowercase; query and cookie names as written.
    pub name: String,
    pub how: StringMatch,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub headers: Vec<NamedMatch>,
    pub query: Vec<NamedMatch>,
    pub cookies: Vec<NamedMatch>,
    pub path: Option<StringMatch>,
    /// Index of the pool the rule sends to.
    pub pool: usize,
    /// Whether the user is also pinned there with the affinity cookie.
    pub sticky: bool,
}

impl Rule {
    /// Whether the rule reads request headers (beyond the path and cookies).
    pub fn reads_headers(&self) -> bool {
        !self.headers.is_empty()
    }

    /// Whether the rule reads `:path` (the path or the query string).
    pub fn reads_path(&self) -> bool {
        self.path.is_some() || !self.query.is_empty()
    }

    /// The cookies the rule reads.
    pub fn cookie_names(&self) -> impl Iterator<Item = &str> {
        self.cookies.iter().map(|c| c.name.as_str())
    }

    pub fn matches(&self, req: &Request) -> bool {
        self.path
            .as_ref()
            .is_none_or(|how| how.matches(Some(req.path())))
            && self
                .headers
                .iter()
                .all(|c| c.how.matches(req.header(&c.name).as_deref()))
            && self
                .query
                .iter()
                .all(|c| c.how.matches(req.query_param(c.name.as_bytes())))
            && self
                .cookies
                .iter()
                .all(|c| c.how.matches(req.cookie(c.name.as_bytes())))
    }
}
