//! Compiling `rules[i]` from the raw form: pool names resolved, header names
//! lowercased, exactly one way of matching per condition, regexes compiled.

use super::raw::{RawRule, RawStringMatch};
use super::ConfigError;
use crate::rules::{NamedMatch, Rule, StringMatch};

/// Compiles `rules[i]`; `pool_index` resolves pool names.
pub(super) fn compile(
    i: usize,
    raw: RawRule,
    pool_index: impl Fn(&str) -> Option<usize>,
) -> Result<Rule, ConfigError> {
    let field = format!("rules[{i}]");
    let pool = pool_index(&raw.pool).ok_or_else(|| {
        ConfigError::new(
            format!("{field}.pool"),
            format!("no pool is named {:?}", raw.pool),
        )
    })?;
    let m = raw.matcher;
    let path = match m.path {
        Some(p) => {
            let path_field = format!("{field}.match.path");
            if p.suffix.is_some() || p.contains.is_some() || p.present.is_some() || p.name.is_some()
            {
                return Err(ConfigError::new(
                    path_field,
                    "takes one of exact, prefix, regex (and no name)",
                ));
            }
            Some(string_match(&path_field, p)?)
        }
        None => None,
    };
    Ok(Rule {
        headers: named(&field, "headers", m.headers, true)?,
        query: named(&field, "query", m.query, false)?,
        cookies: named(&field, "cookies", m.cookies, false)?,
        path,
        pool,
        sticky: raw.sticky,
    })
}

/// The named conditions of `{rule}.match.{kind}`.
fn named(
    rule: &str,
    kind: &str,
    list: Vec<RawStringMatch>,
    lowercase: bool,
) -> Result<Vec<NamedMatch>, ConfigError> {
    list.into_iter()
        .enumerate()
        .map(|(j, c)| {
            let field = format!("{rule}.match.{kind}[{j}]");
            let name = match &c.name {
                Some(n) if !n.is_empty() && lowercase => n.to_ascii_lowercase(),
                Some(n) if !n.is_empty() => n.clone(),
                _ => return Err(ConfigError::new(format!("{field}.name"), "is required")),
            };
            Ok(NamedMatch {
                name,
                how: string_match(&field, c)?,
            })
        })
        .collect()
}

fn string_match(field: &str, c: RawStringMatch) -> Result<StringMatch, ConfigError> {
    let mut set: Vec<StringMatch> = Vec::with_capacity(1);
    if let Some(s) = c.exact {
        set.push(StringMatch::Exact(s.into_bytes()));
    }
    if let Some(s) = c.prefix {
        set.push(StringMatch::Prefix(s.into_bytes()));
    }
    if let Some(s) = c.suffix {
        set.push(StringMatch::Suffix(s.into_bytes()));
    }
    if let Some(s) = c.contains {
        set.push(StringMatch::Contains(s.into_bytes()));
    }
    if let Some(s) = c.regex {
        set.push(StringMatch::regex(&s).map_err(|e| {
            ConfigError::new(
                format!("{field}.regex"),
                format!("{s:?} is not a valid regex: {e}"),
            )
        })?);
    }
    if let Some(p) = c.present {
        set.push(StringMatch::Present(p));
    }
    match (set.pop(), set.is_empty()) {
        (Some(how), true) => Ok(how),
        _ => Err(ConfigError::new(
            field,
            "needs exactly one of exact, prefix, suffix, contains, regex, present",
        )),
    }
}
