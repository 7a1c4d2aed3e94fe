//! Override rules: an ordered list; the first rule whose conditions all hold
//! picks the pool. Conditions on headers, query parameters, cookies and the
//! path, each with one way of matching a string.

use regex_lite::Regex;

use crate::config::ConfigError;
use crate::json::{self, Value};
use crate::request::Request;

#[derive(Debug)]
pub struct RawRule {
    matcher: RawMatch,
    pool: String,
    sticky: bool,
}

impl RawRule {
    /// Reads `rules[i]` (at `at`) from the JSON tree.
    pub fn read(value: &Value, at: &str) -> Result<Self, ConfigError> {
        let o = json::object(value, at, &["match", "pool", "sticky"])?;
        let m = o.required("match", o.get("match"))?;
        let m = json::object(
            m,
            &o.field("match"),
            &["headers", "query", "cookies", "path"],
        )?;
        let list = |kind: &str| -> Result<Vec<RawStringMatch>, ConfigError> {
            m.array(kind)?
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(j, c)| RawStringMatch::read(c, &format!("{}[{j}]", m.field(kind))))
                .collect()
        };
        let matcher = RawMatch {
            headers: list("headers")?,
            query: list("query")?,
            cookies: list("cookies")?,
            path: match m.get("path") {
                Some(p) => Some(RawStringMatch::read(p, &m.field("path"))?),
                None => None,
            },
        };
        Ok(RawRule {
            matcher,
            pool: o.required("pool", o.string("pool")?)?,
            sticky: o.bool("sticky")?.unwrap_or(false),
        })
    }
}

#[derive(Debug, Default)]
struct RawMatch {
    headers: Vec<RawStringMatch>,
    query: Vec<RawStringMatch>,
    cookies: Vec<RawStringMatch>,
    path: Option<RawStringMatch>,
}

/// One condition. `name` is required for headers, query and cookies, and
/// refused for the path; exactly one way of matching is set.
#[derive(Debug, Default)]
struct RawStringMatch {
    name: Option<String>,
    exact: Option<String>,
    prefix: Option<String>,
    suffix: Option<String>,
    contains: Option<String>,
    regex: Option<String>,
    present: Option<bool>,
}

impl RawStringMatch {
    fn read(value: &Value, at: &str) -> Result<Self, ConfigError> {
        let o = json::object(
            value,
            at,
            &[
                "name", "exact", "prefix", "suffix", "contains", "regex", "present",
            ],
        )?;
        Ok(RawStringMatch {
            name: o.string("name")?,
            exact: o.string("exact")?,
            prefix: o.string("prefix")?,
            suffix: o.string("suffix")?,
            contains: o.string("contains")?,
            regex: o.string("regex")?,
            present: o.bool("present")?,
        })
    }
}

#[derive(Debug, Clone)]
enum How {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Contains(Vec<u8>),
    Regex(Regex),
    Present(bool),
}

impl How {
    fn matches(&self, value: Option<&[u8]>) -> bool {
        match (self, value) {
            (How::Present(want), v) => v.is_some() == *want,
            (_, None) => false,
            (How::Exact(s), Some(v)) => v == s.as_slice(),
            (How::Prefix(s), Some(v)) => v.starts_with(s),
            (How::Suffix(s), Some(v)) => v.ends_with(s),
            (How::Contains(s), Some(v)) => {
                s.is_empty() || v.windows(s.len()).any(|w| w == s.as_slice())
            }
            (How::Regex(re), Some(v)) => re.is_match(&String::from_utf8_lossy(v)),
        }
    }
}

#[derive(Debug, Clone)]
struct Named {
    name: String,
    how: How,
}

#[derive(Debug, Clone)]
pub struct Rule {
    headers: Vec<Named>,
    query: Vec<Named>,
    cookies: Vec<Named>,
    path: Option<How>,
    pub pool: usize,
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

/// Compiles `rules[i]`; `pool_index` resolves pool names.
pub fn compile(
    i: usize,
    raw: RawRule,
    pool_index: impl Fn(&str) -> Option<usize>,
) -> Result<Rule, ConfigError> {
    let at = format!("rules[{i}]");
    let pool = pool_index(&raw.pool).ok_or_else(|| {
        ConfigError::new(
            format!("{at}.pool"),
            format!("no pool is named {:?}", raw.pool),
        )
    })?;
    let m = raw.matcher;
    let named = |kind: &str, list: Vec<RawStringMatch>, lowercase: bool| {
        list.into_iter()
            .enumerate()
            .map(|(j, c)| {
                let field = format!("{at}.match.{kind}[{j}]");
                let name = match &c.name {
                    Some(n) if !n.is_empty() => {
                        if lowercase {
                            n.to_ascii_lowercase()
                        } else {
                            n.clone()
                        }
                    }
                    _ => return Err(ConfigError::new(format!("{field}.name"), "is required")),
                };
                Ok(Named {
                    name,
                    how: how(&field, c)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let path = match m.path {
        Some(p) => {
            let field = format!("{at}.match.path");
            if p.suffix.is_some() || p.contains.is_some() || p.present.is_some() || p.name.is_some()
            {
                return Err(ConfigError::new(
                    field,
                    "takes one of exact, prefix, regex (and no name)",
                ));
            }
            Some(how(&field, p)?)
        }
        None => None,
    };
    Ok(Rule {
        headers: named("headers", m.headers, true)?,
        query: named("query", m.query, false)?,
        cookies: named("cookies", m.cookies, false)?,
        path,
        pool,
        sticky: raw.sticky,
    })
}

fn how(field: &str, c: RawStringMatch) -> Result<How, ConfigError> {
    let mut set: Vec<How> = Vec::with_capacity(1);
    if let Some(s) = c.exact {
        set.push(How::Exact(s.into_bytes()));
    }
    if let Some(s) = c.prefix {
        set.push(How::Prefix(s.into_bytes()));
    }
    if let Some(s) = c.suffix {
        set.push(How::Suffix(s.into_bytes()));
    }
    if let Some(s) = c.contains {
        set.push(How::Contains(s.into_bytes()));
    }
    if let Some(s) = c.regex {
        // Full match, as Envoy and Istio match regexes against a whole value.
        let re = Regex::new(&format!("^(?:{s})$")).map_err(|e| {
            ConfigError::new(
                format!("{field}.regex"),
                format!(
                    "{s:?} is not a valid regex: {}",
                    e.to_string().replace('\n', " ")
                ),
            )
        })?;
        set.push(How::Regex(re));
    }
    if let Some(p) = c.present {
        set.push(How::Present(p));
    }
    match (set.pop(), set.is_empty()) {
        (Some(how), true) => Ok(how),
        _ => Err(ConfigError::new(
            field,
            "needs exactly one of exact, prefix, suffix, contains, regex, present",
        )),
    }
}
