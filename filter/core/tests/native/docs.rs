//! The docs stay true to the code:
//! - the configuration reference (`docs/configuration.md`) lists, level by
//!   level, exactly the fields the serde types accept, as serde itself lists
//!   them when it refuses an unknown field;
//! - every refusal the docs quote (README.md and docs/*.md) is what the
//!   filter prints for it.
//!
//! Layouts read here:
//! - reference: a `## ` section per level of the JSON; the first table of the
//!   section has one row per field, the field's name the first code span of
//!   the row's first cell;
//! - a quoted refusal: a fenced block with the info string `text refusal`
//!   holding `env NAME=VALUE` lines (the VM's environment), then the config
//!   (any number of lines, none for an empty config), then the printed line
//!   `configuration refused: <field>: <reason>`. Any other quote of a
//!   refusal (a log excerpt, a code span in prose) must repeat the printed
//!   line of such a block.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use sticky_split_core::config::Config;

const REFERENCE: &str = "docs/configuration.md";
const REFUSED: &str = "configuration refused: ";
/// The generic form prose may use for a refusal.
const TEMPLATE: &str = "<field>: <reason>";
/// A field no level accepts: serde's refusal of it lists those it does.
const PROBE: &str = "docsProbe";

/// README.md and docs/*.md, by path from the repository root, with text.
fn pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut names = vec!["README.md".to_string()];
    let mut docs: Vec<String> = fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|n| {
            let text = fs::read_to_string(root.join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

fn page(name: &str) -> String {
    pages()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("{name} is missing"))
}

/// A line of a page, classified.
enum Line<'a> {
    /// Outside code blocks.
    Prose(&'a str),
    /// Opens a fenced block with this info string.
    Open(&'a str),
    /// Inside a fenced block.
    Code(&'a str),
    /// Closes a fenced block.
    Close,
}

/// The lines of a page (numbered from 1), with fenced blocks marked. A block
/// opens with three or more backticks or tildes and closes with at least as
/// many of the same; its lines lose the opening fence's indentation.
fn lines(text: &str) -> Vec<(usize, Line<'_>)> {
    // (fence character, fence width, indentation)
    let mut fence: Option<(char, usize, usize)> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        let run = |c: char| trimmed.len() - trimmed.trim_start_matches(c).len();
        let kind = match fence {
            None => match ['`', '~'].into_iter().find(|&c| run(c) >= 3) {
                Some(c) => {
                    let indent = line.len() - line.trim_start().len();
                    fence = Some((c, run(c), indent));
                    Line::Open(trimmed[run(c)..].trim())
                }
                None => Line::Prose(line),
            },
            Some((c, width, _)) if run(c) >= width && run(c) == trimmed.len() => {
                fence = None;
                Line::Close
            }
            Some((_, _, indent)) => {
                let spaces = line.len() - line.trim_start_matches(' ').len();
                Line::Code(&line[spaces.min(indent)..])
            }
        };
        out.push((i + 1, kind));
    }
    out
}

/// The text of every code span of a line, and whether one is left open.
fn code_spans(line: &str) -> (Vec<&str>, bool) {
    let parts: Vec<&str> = line.split('`').collect();
    let spans = parts.iter().skip(1).step_by(2).copied().collect();
    (spans, parts.len() % 2 == 0)
}

// ---- the configuration reference ----------------------------------------

/// Each level of the config: the reference section that documents it, and
/// configs that carry the probe field at that level.
fn levels() -> Vec<(&'static str, Vec<String>)> {
    let pool = r#"{"name": "a", "weight": 1}"#;
    let probe = format!(r#""{PROBE}": 1"#);
    let with = |extra: String| format!(r#"{{"pools": [{pool}], {extra}}}"#);
    let in_rule =
        |matcher: String| with(format!(r#""rules": [{{"match": {matcher}, "pool": "a"}}]"#));
    vec![
        ("Top level", vec![with(probe.clone())]),
        (
            "Pools",
            vec![format!(
                r#"{{"pools": [{{"name": "a", "weight": 1, {probe}}}]}}"#
            )],
        ),
        ("Cookie", vec![with(format!(r#""cookie": {{{probe}}}"#))]),
        (
            "Failover",
            vec![with(format!(r#""failover": {{{probe}}}"#))],
        ),
        ("hashOn", vec![with(format!(r#""hashOn": {{{probe}}}"#))]),
        (
            "Rules",
            vec![with(format!(
                r#""rules": [{{"match": {{}}, "pool": "a", {probe}}}]"#
            ))],
        ),
        ("Rule match", vec![in_rule(format!("{{{probe}}}"))]),
        (
            "String match",
            ["headers", "query", "cookies"]
                .iter()
                .map(|list| in_rule(format!(r#"{{"{list}": [{{"name": "n", {probe}}}]}}"#)))
                .chain([in_rule(format!(r#"{{"path": {{{probe}}}}}"#))])
                .collect(),
        ),
    ]
}

/// The fields the code accepts where `config` has the probe field, read
/// from serde's refusal: "unknown field `docsProbe`, expected one of `a`,
/// `b`" (or "expected `a`", "expected `a` or `b`").
fn accepted(config: &str) -> BTreeSet<String> {
    let err = Config::from_json_with_env(config.as_bytes(), |_| None)
        .err()
        .unwrap_or_else(|| panic!("accepted a config with `{PROBE}`: {config}"));
    let lead = format!("unknown field `{PROBE}`, expected ");
    let list = err
        .reason
        .strip_prefix(&lead)
        .unwrap_or_else(|| panic!("not serde's unknown-field refusal: {err}\n{config}"));
    let fields: BTreeSet<String> = code_spans(list).0.into_iter().map(String::from).collect();
    assert!(!fields.is_empty(), "no field listed in: {err}");
    fields
}

/// Field names per `## ` section of the reference: the first code span of
/// the first cell of each body row of the section's first table.
fn documented(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut table_rows = 0; // rows of the current section's table seen so far
    let mut table_done = false;
    for (n, line) in lines(text) {
        let Line::Prose(line) = line else {
            table_done |= table_rows > 0;
            continue;
        };
        if let Some(heading) = line.strip_prefix("## ") {
            let name = heading.trim().to_string();
            assert!(
                !sections.contains_key(&name),
                "{REFERENCE}: section {name:?} twice"
            );
            sections.insert(name.clone(), Vec::new());
            current = Some(name);
            table_rows = 0;
            table_done = false;
            continue;
        }
        let Some(section) = current.as_ref() else {
            continue;
        };
        if !line.starts_with('|') {
            table_done |= table_rows > 0;
            continue;
        }
        if table_done {
            continue;
        }
        table_rows += 1;
        if table_rows <= 2 {
            continue; // the header row and the delimiter row
        }
        let first_cell = line.split('|').nth(1).unwrap_or("");
        let field = code_spans(first_cell).0.first().map(|s| s.to_string());
        let field = field.unwrap_or_else(|| {
            panic!("{REFERENCE}:{n}: the first cell names no field in backticks: {line}")
        });
        sections.get_mut(section).unwrap().push(field);
    }
    sections
}

#[test]
fn configuration_reference_lists_exactly_the_accepted_fields() {
    let sections = documented(&page(REFERENCE));
    let mut problems = Vec::new();
    for (section, configs) in levels() {
        let Some(listed) = sections.get(section) else {
            problems.push(format!("{REFERENCE}: no section \"## {section}\""));
            continue;
        };
        let docs: BTreeSet<String> = listed.iter().cloned().collect();
        if docs.len() != listed.len() {
            problems.push(format!(
                "{REFERENCE} \"{section}\": a field is listed twice: {listed:?}"
            ));
        }
        for config in configs {
            let code = accepted(&config);
            for field in docs.difference(&code) {
                problems.push(format!(
                    "{REFERENCE} \"{section}\" documents `{field}`, which the code refuses (it accepts {code:?}; config {config})"
                ));
            }
            for field in code.difference(&docs) {
                problems.push(format!(
                    "the code accepts `{field}` (config {config}), which {REFERENCE} \"{section}\" does not document"
                ));
            }
        }
    }
    problems.dedup();
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

// ---- quoted refusals -------------------------------------------------------

/// One quoted refusal: where, the VM's environment, the config, the line.
struct Quote {
    at: String,
    env: Vec<(String, String)>,
    config: String,
    printed: String,
}

/// Every `text refusal` block of the pages.
fn quotes() -> Vec<Quote> {
    let mut out = Vec::new();
    for (name, text) in pages() {
        let mut block: Option<(usize, Vec<&str>)> = None;
        for (n, line) in lines(&text) {
            match line {
                Line::Open(info) if info.split_whitespace().any(|w| w == "refusal") => {
                    block = Some((n, Vec::new()))
                }
                Line::Code(l) => {
                    if let Some((_, body)) = block.as_mut() {
                        body.push(l);
                    }
                }
                Line::Close => {
                    if let Some((start, body)) = block.take() {
                        out.push(quote(format!("{name}:{start}"), &body));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn quote(at: String, body: &[&str]) -> Quote {
    let env_lines = body.iter().take_while(|l| l.starts_with("env ")).count();
    let env = body[..env_lines]
        .iter()
        .map(|l| {
            let (name, value) = l["env ".len()..]
                .split_once('=')
                .unwrap_or_else(|| panic!("{at}: not `env NAME=VALUE`: {l}"));
            (name.to_string(), value.to_string())
        })
        .collect();
    let (printed, config) = body[env_lines..]
        .split_last()
        .unwrap_or_else(|| panic!("{at}: an empty refusal block"));
    assert!(
        printed.starts_with(REFUSED),
        "{at}: the block's last line is not `{REFUSED}...`: {printed}"
    );
    Quote {
        at,
        env,
        config: config.join("\n"),
        printed: printed.to_string(),
    }
}

#[test]
fn quoted_refusals_are_what_the_filter_prints() {
    let quotes = quotes();
    assert!(
        quotes.len() >= 5,
        "only {} refusal blocks found",
        quotes.len()
    );
    let mut problems = Vec::new();
    for q in &quotes {
        let env = |name: &str| {
            q.env
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_bytes().to_vec())
        };
        match Config::from_json_with_env(q.config.as_bytes(), env) {
            Ok(_) => problems.push(format!("{}: the config is accepted:\n  {}", q.at, q.config)),
            Err(e) => {
                let printed = format!("{REFUSED}{e}");
                if printed != q.printed {
                    problems.push(format!(
                        "{}: quoted\n  {}\nbut the filter prints\n  {printed}",
                        q.at, q.printed
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Refusals quoted outside `text refusal` blocks: (where, the text after
/// `configuration refused: `), or an error for a quote that cannot be read.
fn other_quotes() -> Vec<Result<(String, String), String>> {
    let mut out = Vec::new();
    for (name, text) in pages() {
        let mut in_refusal_block = false;
        for (n, line) in lines(&text) {
            let at = format!("{name}:{n}");
            match line {
                Line::Open(info) => {
                    in_refusal_block = info.split_whitespace().any(|w| w == "refusal")
                }
                Line::Close => in_refusal_block = false,
                Line::Code(l) if !in_refusal_block => {
                    if let Some((_, rest)) = l.split_once(REFUSED) {
                        out.push(Ok((at, rest.to_string())));
                    }
                }
                Line::Code(_) => {}
                Line::Prose(l) => {
                    let (spans, open) = code_spans(l);
                    for (i, span) in spans.iter().enumerate() {
                        if let Some((_, rest)) = span.split_once(REFUSED) {
                            if open && i + 1 == spans.len() {
                                out.push(Err(format!(
                                    "{at}: a refusal quote breaks across lines; keep it on one"
                                )));
                            } else {
                                out.push(Ok((at.clone(), rest.to_string())));
                            }
                        }
                    }
                    let outside: String = l.split('`').step_by(2).collect();
                    if outside.contains(REFUSED) {
                        out.push(Err(format!(
                            "{at}: a refusal quoted outside code; put it in backticks"
                        )));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn other_refusal_quotes_repeat_a_checked_one() {
    let checked: BTreeSet<String> = quotes()
        .into_iter()
        .map(|q| q.printed[REFUSED.len()..].to_string())
        .collect();
    let mut problems = Vec::new();
    for quote in other_quotes() {
        match quote {
            Err(problem) => problems.push(problem),
            Ok((_, rest)) if rest == TEMPLATE || checked.contains(&rest) => {}
            Ok((at, rest)) => problems.push(format!(
                "{at}: `{REFUSED}{rest}` is not the printed line of any `text refusal` block"
            )),
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The reserved header names of the configuration reference are the code's.
#[test]
fn reserved_header_names_are_all_documented() {
    use sticky_split_core::config::{
        RESERVED_ANYWHERE, RESERVED_IN_REQUESTS, RESERVED_IN_RESPONSES,
    };
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
    )
    .unwrap();
    let section = page
        .split("## Header names")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Header names section");
    // each table's rows, in order
    let tables: Vec<Vec<&str>> = section
        .split("\n\n")
        .filter(|block| block.starts_with("| name |"))
        .map(|block| {
            block
                .lines()
                .skip(2)
                .filter_map(|row| row.split('`').nth(1))
                .collect()
        })
        .collect();
    let code: Vec<Vec<&str>> = [
        RESERVED_ANYWHERE,
        RESERVED_IN_REQUESTS,
        RESERVED_IN_RESPONSES,
    ]
    .iter()
    .map(|t| t.iter().map(|&(name, _)| name).collect())
    .collect();
    assert_eq!(tables, code);
}
