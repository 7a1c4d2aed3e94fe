//! Config validation, one named row per case: every refusal names its field.

use sticky_split_core::config::{Config, ConfigError, Failover, SameSite, Secure};

use super::helpers::KEY;

const POOLS: &str =
    r#""pools": [{"name": "pool1", "weight": 80}, {"name": "pool2", "weight": 20}]"#;

/// `{"pools": [{"name": "a", "weight": 1}], EXTRA}`
fn one_pool(extra: &str) -> String {
    format!(r#"{{"pools": [{{"name": "a", "weight": 1}}], {extra}}}"#)
}

/// One pool `a` and these rules.
fn rules(rules: &str) -> String {
    one_pool(&format!(r#""rules": {rules}"#))
}

/// The environment the table's configs load in: signing keys of each kind.
fn env(name: &str) -> Option<Vec<u8>> {
    match name {
        "SHORT" => Some(b"too short".to_vec()),
        "EMPTY" => Some(Vec::new()),
        "SPACES" => Some(b"                ".to_vec()),
        "NEWLINE" => Some(b"0123456789abcde\n".to_vec()),
        "LEADING" => Some(b"\t0123456789abcdef".to_vec()),
        "KEY" => Some(KEY.to_vec()),
        _ => None,
    }
}

/// JSON as istiod prints a WasmPlugin's `pluginConfig` (the legacy jsonpb
/// marshaller): compact, object keys sorted, `<`, `>`, `&`, U+2028 and U+2029
/// escaped. `None` for text that is not JSON.
fn istio_printed(json: &str) -> Option<String> {
    // serde_json's map is sorted by key (no preserve_order feature)
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut out = String::new();
    for ch in value.to_string().chars() {
        match ch {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", ch as u32))
            }
            _ => out.push(ch),
        }
    }
    Some(out)
}

fn load(json: &str) -> Result<Config, ConfigError> {
    Config::from_json_with_env(json.as_bytes(), env)
}

fn with(extra: &str) -> String {
    if extra.is_empty() {
        format!("{{{POOLS}}}")
    } else {
        format!("{{{POOLS}, {extra}}}")
    }
}

#[test]
fn refusals_name_the_field() {
    // (case, config, field, words the reason must contain)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("empty", String::new(), "configuration", "empty"),
        ("whitespace only", " \n\t".into(), "configuration", "empty"),
        ("a byte-order mark", format!("\u{feff}{}", with("")), "configuration", "byte-order mark"),
        ("not json", "{".into(), "configuration", "EOF"),
        ("not an object", "[1, 2]".into(), "configuration", "must be a JSON object"),
        ("a string", "\"pools\"".into(), "configuration", "must be a JSON object"),
        (
            "pool as an array",
            r#"{"pools": [{"name": "a", "weight": 1}, ["b", 1]]}"#.into(),
            "pools[1]",
            "must be a JSON object",
        ),
        ("cookie as an array", with(r#""cookie": ["s"]"#), "cookie", "must be a JSON object"),
        ("pools as an object", r#"{"pools": {"name": "a"}}"#.into(), "pools", "expected a sequence"),
        ("trailing garbage", format!("{} x", with("")), "configuration", "trailing"),
        ("missing pools", "{}".into(), "pools", "missing field"),
        (
            "duplicate top-level key",
            r#"{"pools": [{"name": "a", "weight": 1}], "pools": [{"name": "b", "weight": 1}]}"#.into(),
            "pools",
            "`pools` is given twice in one object (again at line 1 column 47)",
        ),
        (
            "duplicate pool key",
            r#"{"pools": [{"name": "a", "weight": 0, "weight": 5}, {"name": "b", "weight": 1}]}"#.into(),
            "pools[0].weight",
            "`weight` is given twice in one object (again at line 1 column 46)",
        ),
        (
            "duplicate cookie key",
            with(r#""cookie": {"name": "a", "maxAge": 5, "name": "b"}"#),
            "cookie.name",
            "`name` is given twice",
        ),
        (
            "duplicate failover key",
            with(r#""failover": {"enabled": false, "enabled": true}"#),
            "failover.enabled",
            "`enabled` is given twice",
        ),
        (
            "duplicate hashOn key",
            with(r#""hashOn": {"header": "x-user", "header": "x-other"}"#),
            "hashOn.header",
            "`header` is given twice",
        ),
        (
            "duplicate rule key",
            rules(r#"[{"match": {"path": {"prefix": "/a"}}, "pool": "a", "pool": "b"}]"#),
            "rules[0].pool",
            "`pool` is given twice",
        ),
        (
            "duplicate match key",
            rules(r#"[{"match": {"headers": [], "headers": [{"name": "x", "present": true}]}, "pool": "a"}]"#),
            "rules[0].match.headers",
            "`headers` is given twice",
        ),
        (
            "duplicate condition key",
            rules(r#"[{"match": {"headers": [{"name": "x", "exact": "1", "exact": "2"}]}, "pool": "a"}]"#),
            "rules[0].match.headers[0].exact",
            "`exact` is given twice",
        ),
        ("no pools", r#"{"pools": []}"#.into(), "pools", "at least one"),
        ("unknown top-level field", with(r#""colour": "blue""#), "colour", "unknown field"),
        ("misspelt field", with(r#""routeheader": "x""#), "routeheader", "unknown field"),
        (
            "unknown pool field",
            r#"{"pools": [{"name": "a", "weight": 1, "wieght": 2}]}"#.into(),
            "pools[0].wieght",
            "unknown field",
        ),
        (
            "missing weight",
            r#"{"pools": [{"name": "a"}]}"#.into(),
            "pools[0].weight",
            "missing field",
        ),
        (
            "negative weight",
            r#"{"pools": [{"name": "a", "weight": 1}, {"name": "b", "weight": -1}]}"#.into(),
            "pools[1].weight",
            "-1",
        ),
        (
            "fractional weight",
            r#"{"pools": [{"name": "a", "weight": 80.5}]}"#.into(),
            "pools[0].weight",
            "80.5",
        ),
        (
            "weight as string",
            r#"{"pools": [{"name": "a", "weight": "80"}]}"#.into(),
            "pools[0].weight",
            "string",
        ),
        (
            "weight too large",
            r#"{"pools": [{"name": "a", "weight": 4294967296}]}"#.into(),
            "pools[0].weight",
            "4294967296",
        ),
        (
            "zero total weight",
            r#"{"pools": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}"#.into(),
            "pools",
            "total weight is 0",
        ),
        (
            "duplicate name",
            r#"{"pools": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}, {"name": "a", "weight": 1}]}"#.into(),
            "pools[2].name",
            "duplicate pool name \"a\" (also pools[0].name)",
        ),
        (
            "name with a space",
            r#"{"pools": [{"name": "pool 1", "weight": 1}]}"#.into(),
            "pools[0].name",
            "not a valid name",
        ),
        (
            "name injecting a header",
            r#"{"pools": [{"name": "p\r\nx-evil: 1", "weight": 1}]}"#.into(),
            "pools[0].name",
            "not a valid name",
        ),
        (
            "name injecting a cookie attribute",
            r#"{"pools": [{"name": "p; Domain=evil.com", "weight": 1}]}"#.into(),
            "pools[0].name",
            "not a valid name",
        ),
        (
            "empty name",
            r#"{"pools": [{"name": "", "weight": 1}]}"#.into(),
            "pools[0].name",
            "not a valid name",
        ),
        (
            "name too long",
            format!(r#"{{"pools": [{{"name": "{}", "weight": 1}}]}}"#, "a".repeat(65)),
            "pools[0].name",
            "not a valid name",
        ),
        (
            "name not a string",
            r#"{"pools": [{"name": 7, "weight": 1}]}"#.into(),
            "pools[0].name",
            "integer",
        ),
        (
            "pool name Istio's cache extractor misreads",
            r#"{"pools": [{"name": "cache.v2", "weight": 1}]}"#.into(),
            "pools[0].name",
            "contains \"cache.\"",
        ),
        (
            "pool name Istio's tag extractor misreads",
            r#"{"pools": [{"name": "a", "weight": 1}, {"name": "v2.tag.b", "weight": 1}]}"#.into(),
            "pools[1].name",
            "tag\\.(.+?);\\.",
        ),
        (
            "cluster with a space",
            r#"{"pools": [{"name": "a", "weight": 1, "cluster": "my cluster"}]}"#.into(),
            "pools[0].cluster",
            "not a valid cluster name",
        ),
        ("cookie name", with(r#""cookie": {"name": "a=b"}"#), "cookie.name", "not a valid cookie name"),
        ("cookie path", with(r#""cookie": {"path": "app"}"#), "cookie.path", "not a valid cookie path"),
        ("cookie path with ;", with(r#""cookie": {"path": "/a;b"}"#), "cookie.path", "not a valid cookie path"),
        ("cookie domain", with(r#""cookie": {"domain": "exa mple.com"}"#), "cookie.domain", "not a valid domain"),
        ("cookie secure string", with(r#""cookie": {"secure": "yes"}"#), "cookie.secure", "\"auto\""),
        ("cookie secure number", with(r#""cookie": {"secure": 1}"#), "cookie.secure", "\"auto\""),
        ("cookie sameSite case", with(r#""cookie": {"sameSite": "lax"}"#), "cookie.sameSite", "unknown variant"),
        (
            "sameSite None without Secure",
            with(r#""cookie": {"sameSite": "None", "secure": false}"#),
            "cookie.sameSite",
            "requires the Secure attribute",
        ),
        ("cookie maxAge negative", with(r#""cookie": {"maxAge": -5}"#), "cookie.maxAge", "-5"),
        ("cookie httpOnly string", with(r#""cookie": {"httpOnly": "yes"}"#), "cookie.httpOnly", "string"),
        ("cookie unknown field", with(r#""cookie": {"expires": 5}"#), "cookie.expires", "unknown field"),
        ("routeHeader reserved", with(r#""routeHeader": "Cookie""#), "routeHeader", "reserved"),
        ("routeHeader envoy's", with(r#""routeHeader": "x-envoy-upstream""#), "routeHeader", "reserved"),
        ("routeHeader pseudo", with(r#""routeHeader": ":authority""#), "routeHeader", "not a valid header name"),
        ("routeHeader empty", with(r#""routeHeader": """#), "routeHeader", "not a valid header name"),
        (
            "clusterHeader equals routeHeader",
            with(r#""routeHeader": "x-pool", "clusterHeader": "X-Pool""#),
            "clusterHeader",
            "must differ",
        ),
        ("clusterHeader bad", with(r#""clusterHeader": "x pool""#), "clusterHeader", "not a valid header name"),
        ("debugHeader bad", with(r#""debugHeader": "x;y""#), "debugHeader", "not a valid header name"),
        ("debugHeader reserved", with(r#""debugHeader": "set-cookie""#), "debugHeader", "reserved"),
        ("debugHeader clash", with(r#""debugHeader": "x-sticky-split-pool""#), "debugHeader", "must differ"),
        (
            "name with markup, escaped by Istio",
            r#"{"pools": [{"name": "<pool&1>", "weight": 1}]}"#.into(),
            "pools[0].name",
            "not a valid name",
        ),
        (
            "evict with weight",
            r#"{"pools": [{"name": "a", "weight": 1}, {"name": "b", "weight": 5, "evict": true}]}"#.into(),
            "pools[1].evict",
            "must have weight 0",
        ),
        (
            "unknown pool",
            rules(r#"[{"match": {}, "pool": "b"}]"#),
            "rules[0].pool",
            "no pool is named \"b\"",
        ),
        (
            "bad regex",
            rules(r#"[{"match": {"headers": [{"name": "x", "regex": "(a"}]}, "pool": "a"}]"#),
            "rules[0].match.headers[0].regex",
            "not a valid regex",
        ),
        (
            "two ways",
            rules(r#"[{"match": {"headers": [{"name": "x", "exact": "1", "prefix": "1"}]}, "pool": "a"}]"#),
            "rules[0].match.headers[0]",
            "exactly one of",
        ),
        (
            "no way",
            rules(r#"[{"match": {"query": [{"name": "x"}]}, "pool": "a"}]"#),
            "rules[0].match.query[0]",
            "exactly one of",
        ),
        (
            "no name",
            rules(r#"[{"match": {"cookies": [{"exact": "1"}]}, "pool": "a"}]"#),
            "rules[0].match.cookies[0].name",
            "required",
        ),
        (
            "path suffix",
            rules(r#"[{"match": {"path": {"suffix": ".js"}}, "pool": "a"}]"#),
            "rules[0].match.path",
            "one of exact, prefix, regex",
        ),
        (
            "unknown key",
            rules(r#"[{"match": {"header": []}, "pool": "a"}]"#),
            "rules[0].match.header",
            "unknown field",
        ),
        (
            "match missing",
            rules(r#"[{"pool": "a"}]"#),
            "rules[0].match",
            "missing field",
        ),
        (
            "sticky not bool",
            rules(r#"[{"match": {}, "pool": "a", "sticky": "yes"}]"#),
            "rules[0].sticky",
            "invalid type",
        ),
        (
            "rule as array",
            rules(r#"[["a"]]"#),
            "rules[0]",
            "must be a JSON object",
        ),
        (
            "second rule",
            rules(r#"[{"match": {}, "pool": "a"}, {"match": {"path": {"regex": "*"}}, "pool": "a"}]"#),
            "rules[1].match.path.regex",
            "not a valid regex",
        ),
        ("failover ejectAfter 0", with(r#""failover": {"ejectAfter": 0}"#), "failover.ejectAfter", "at least 1"),
        ("failover ejectSeconds 0", with(r#""failover": {"ejectSeconds": 0}"#), "failover.ejectSeconds", "out of range"),
        ("failover misspelt", with(r#""failover": {"ejectafter": 3}"#), "failover.ejectafter", "unknown field"),
        ("failover enabled string", with(r#""failover": {"enabled": "yes"}"#), "failover.enabled", "invalid type"),
        ("idleTimeout 1", with(r#""cookie": {"idleTimeout": 1}"#), "cookie.idleTimeout", "out of range"),
        ("absoluteTimeout 0", with(r#""cookie": {"absoluteTimeout": 0}"#), "cookie.absoluteTimeout", "out of range"),
        ("absoluteTimeout over a year", with(r#""cookie": {"absoluteTimeout": 40000000}"#), "cookie.absoluteTimeout", "out of range"),
        ("idleTimeout negative", with(r#""cookie": {"idleTimeout": -1}"#), "cookie.idleTimeout", "-1"),
        (
            "partitioned without Secure",
            with(r#""cookie": {"partitioned": true, "secure": false}"#),
            "cookie.partitioned",
            "requires the Secure attribute",
        ),
        ("sessionHeader reserved", with(r#""sessionHeader": "Cookie""#), "sessionHeader", "reserved"),
        ("clearRouteCache string", with(r#""clearRouteCache": "yes""#), "clearRouteCache", "invalid type"),
        ("responseCounters number", with(r#""responseCounters": 1"#), "responseCounters", "invalid type"),
        ("sessionHeader clash", with(r#""sessionHeader": "x-sticky-split-pool""#), "sessionHeader", "must differ"),
        (
            "'hashOn': {}",
            one_pool(r#""hashOn": {}"#),
            "hashOn",
            "exactly one of",
        ),
        (
            "'hashOn': {'header': 'x', 'cookie': 'y'}",
            one_pool(r#""hashOn": {"header": "x", "cookie": "y"}"#),
            "hashOn",
            "exactly one of",
        ),
        (
            "'hashOn': {'header': 'x y'}",
            one_pool(r#""hashOn": {"header": "x y"}"#),
            "hashOn.header",
            "not a valid name",
        ),
        (
            "'hashOn': {'query': 'x'}",
            one_pool(r#""hashOn": {"query": "x"}"#),
            "hashOn.query",
            "unknown field",
        ),
        (
            "'affinity': 'sticky'",
            one_pool(r#""affinity": "sticky""#),
            "affinity",
            "unknown variant",
        ),
        (
            "'generation': 'g.1'",
            one_pool(r#""generation": "g.1""#),
            "generation",
            "not valid",
        ),
        (
            "'generation': ''",
            one_pool(r#""generation": """#),
            "generation",
            "not valid",
        ),
        (
            "'cookie': {'signingKeyEnv': 'MISSING'}",
            one_pool(r#""cookie": {"signingKeyEnv": "MISSING"}"#),
            "cookie.signingKeyEnv",
            "MISSING is not set in the VM",
        ),
        (
            "'cookie': {'signingKeyEnv': 'EMPTY'}",
            one_pool(r#""cookie": {"signingKeyEnv": "EMPTY"}"#),
            "cookie.signingKeyEnv",
            "EMPTY is empty",
        ),
        (
            "a sticky rule to a weight-0 pool, unsigned",
            r#"{"pools": [{"name": "a", "weight": 1}, {"name": "b", "weight": 0}],
                "rules": [{"match": {"path": {"prefix": "/b"}}, "pool": "b", "sticky": true}]}"#
                .to_string(),
            "rules[0].sticky",
            "set cookie.signingKeyEnv",
        ),
        (
            "'cookie': {'signingKeyEnv': 'SPACES'}",
            one_pool(r#""cookie": {"signingKeyEnv": "SPACES"}"#),
            "cookie.signingKeyEnv",
            "SPACES holds only whitespace",
        ),
        (
            "'cookie': {'signingKeyEnv': 'NEWLINE'}",
            one_pool(r#""cookie": {"signingKeyEnv": "NEWLINE"}"#),
            "cookie.signingKeyEnv",
            "starts or ends with whitespace",
        ),
        (
            "'cookie': {'signingKeyEnv': 'LEADING'}",
            one_pool(r#""cookie": {"signingKeyEnv": "LEADING"}"#),
            "cookie.signingKeyEnv",
            "starts or ends with whitespace",
        ),
        (
            "'cookie': {'signingKeyEnv': 'KEY', 'previousSigningKeyEnvs': ['NEWLINE']}",
            one_pool(r#""cookie": {"signingKeyEnv": "KEY", "previousSigningKeyEnvs": ["NEWLINE"]}"#),
            "cookie.previousSigningKeyEnvs[0]",
            "starts or ends with whitespace",
        ),
        (
            "'cookie': {'signingKeyEnv': 'SHORT'}",
            one_pool(r#""cookie": {"signingKeyEnv": "SHORT"}"#),
            "cookie.signingKeyEnv",
            "at least 16",
        ),
        (
            "'cookie': {'signingKeyEnv': ''}",
            one_pool(r#""cookie": {"signingKeyEnv": ""}"#),
            "cookie.signingKeyEnv",
            "not a valid environment variable name",
        ),
    ];
    let mut istio_forms = 0;
    for (label, json, field, reason) in cases {
        // A pluginConfig is a protobuf Struct: istiod cannot print a
        // repeated key, so those rows have no Istio form.
        let printed = istio_printed(&json).filter(|_| !reason.contains("is given twice"));
        istio_forms += usize::from(printed.is_some());
        for (form, text) in [
            ("as written", Some(json.clone())),
            ("as Istio prints it", printed),
        ] {
            let Some(text) = text else { continue };
            match load(&text) {
                Ok(_) => panic!("case {label:?} {form}: accepted {text}"),
                Err(e) => {
                    assert_eq!(e.field, field, "case {label:?} {form}: {e}");
                    assert!(
                        e.reason.contains(reason),
                        "case {label:?} {form}: reason {:?} lacks {reason:?}",
                        e.reason
                    );
                    assert!(!e.to_string().contains("too short"), "the key leaked: {e}");
                }
            }
        }
    }
    assert!(istio_forms > 60, "{istio_forms} cases were valid JSON");
}

#[test]
fn pool_names_the_extractors_leave_alone_are_accepted() {
    for name in [
        "worker_1",
        "worker_x.y",
        "my.worker_1",
        "v1.2_b",
        "tagged",
        "caches",
        "stable-2",
    ] {
        let json = format!(r#"{{"pools": [{{"name": "{name}", "weight": 1}}]}}"#);
        assert!(load(&json).is_ok(), "{name}");
    }
}

#[test]
fn the_issue_example_is_accepted() {
    let json = r#"{
      "pools": [ {"name": "pool1", "weight": 80}, {"name": "pool2", "weight": 20, "cluster": "pool2-cluster"} ],
      "cookie": { "name": "nginx-app-subset", "maxAge": 2592000, "path": "/", "domain": "example.com",
                  "httpOnly": true, "secure": "auto", "sameSite": "Lax" },
      "routeHeader": "x-sticky-split-pool",
      "clusterHeader": "x-sticky-split-cluster"
    }"#;
    let c = Config::from_json(json.as_bytes()).unwrap();
    assert_eq!(c.pools.len(), 2);
    assert_eq!(c.pools[0].cluster, "pool1");
    assert_eq!(c.pools[1].cluster, "pool2-cluster");
    assert_eq!(c.cookie.name, "nginx-app-subset");
    assert_eq!(c.cookie.domain.as_deref(), Some("example.com"));
    assert_eq!(c.cluster_header.as_deref(), Some("x-sticky-split-cluster"));
    assert_eq!(
        c.set_cookie_header("pool2", true),
        "nginx-app-subset=pool2; Max-Age=2592000; Path=/; Domain=example.com; HttpOnly; Secure; SameSite=Lax"
    );
}

#[test]
fn defaults() {
    let c = Config::from_json(with("").as_bytes()).unwrap();
    assert_eq!(c.cookie.name, "sticky-split");
    assert_eq!(c.cookie.max_age, 2_592_000);
    assert_eq!(c.cookie.path, "/");
    assert_eq!(c.cookie.domain, None);
    assert!(c.cookie.http_only);
    assert_eq!(c.cookie.secure, Secure::Auto);
    assert_eq!(c.cookie.same_site, SameSite::Lax);
    assert_eq!(c.route_header, "x-sticky-split-pool");
    assert_eq!(c.cluster_header, None);
    assert_eq!(c.debug_header, None);
    assert!(!c.cookie.partitioned);
    assert_eq!(c.session_header, None);
    assert!(!c.timeouts.is_set());
    // failover is on unless switched off
    assert_eq!(
        c.failover,
        Failover {
            enabled: true,
            eject_after: 5,
            eject_seconds: 30
        }
    );
}

#[test]
fn accepted_variants() {
    let cases: &[(&str, &str)] = &[
        ("header names are lowercased", r#""routeHeader": "X-Pool""#),
        (
            "sameSite None with auto",
            r#""cookie": {"sameSite": "None"}"#,
        ),
        (
            "sameSite None with secure",
            r#""cookie": {"sameSite": "None", "secure": true}"#,
        ),
        ("session cookie", r#""cookie": {"maxAge": 0}"#),
        ("clear the route cache", r#""clearRouteCache": true"#),
        (
            "no response counters, no failover",
            r#""responseCounters": false, "failover": {"enabled": false}"#,
        ),
        (
            "failover, timeouts, session header, partitioned",
            r#""failover": {"enabled": true, "ejectAfter": 1, "ejectSeconds": 5}, "sessionHeader": "X-Session",
               "cookie": {"absoluteTimeout": 86400, "idleTimeout": 1800, "partitioned": true}"#,
        ),
        (
            "leading-dot domain",
            r#""cookie": {"domain": ".example.com"}"#,
        ),
    ];
    for (label, extra) in cases {
        assert!(
            Config::from_json(with(extra).as_bytes()).is_ok(),
            "case {label:?}"
        );
    }
    let c = Config::from_json(with(r#""routeHeader": "X-Pool""#).as_bytes()).unwrap();
    assert_eq!(c.route_header, "x-pool");
    // a drained pool next to a live one is fine
    let c = Config::from_json(
        br#"{"pools": [{"name": "a", "weight": 0}, {"name": "b", "weight": 1}]}"#,
    )
    .unwrap();
    assert_eq!(c.pools[0].weight, 0);
}

#[test]
fn pool_lookup_by_cookie_bytes() {
    let names: Vec<String> = (0..100).map(|i| format!("pool-{i:03}")).collect();
    let pools: Vec<String> = names
        .iter()
        .map(|n| format!(r#"{{"name": "{n}", "weight": 1}}"#))
        .collect();
    let c = Config::from_json(format!(r#"{{"pools": [{}]}}"#, pools.join(",")).as_bytes()).unwrap();
    for (i, n) in names.iter().enumerate() {
        assert_eq!(c.pool_by_name(n.as_bytes()), Some(i));
    }
    for miss in [&b""[..], b"pool-100", b"pool-00", b"POOL-001", b"\xff"] {
        assert_eq!(c.pool_by_name(miss), None, "{miss:?}");
    }
}

#[test]
fn list_lengths_are_bounded() {
    let pools: Vec<String> = (0..1025)
        .map(|i| format!(r#"{{"name": "p{i}", "weight": 1}}"#))
        .collect();
    let e =
        Config::from_json(format!(r#"{{"pools": [{}]}}"#, pools.join(",")).as_bytes()).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.reason.as_str()),
        ("pools", "has 1025 entries; at most 1024 are allowed")
    );
    let rules: Vec<&str> = (0..1025)
        .map(|_| r#"{"match": {}, "pool": "pool1"}"#)
        .collect();
    let e = Config::from_json(with(&format!(r#""rules": [{}]"#, rules.join(","))).as_bytes())
        .unwrap_err();
    assert_eq!(e.field, "rules");
    assert!(Config::from_json(
        with(&format!(r#""rules": [{}]"#, rules[..1024].join(","))).as_bytes()
    )
    .is_ok());
}

/// Every reserved header name, as each field that may not take it: refused,
/// naming the field; a name reserved on one side only is accepted for the
/// fields of the other.
#[test]
fn reserved_header_names_are_refused_for_the_fields_they_would_break() {
    use sticky_split_core::config::{
        RESERVED_ANYWHERE, RESERVED_IN_REQUESTS, RESERVED_IN_RESPONSES,
    };
    // (field, written in requests, written in responses)
    let fields = [
        ("routeHeader", true, false),
        ("clusterHeader", true, false),
        ("debugHeader", false, true),
        ("sessionHeader", true, true),
    ];
    let example = |pattern: &str| pattern.replace('*', "example");
    let mut rows = 0;
    for (table, in_requests, in_responses) in [
        (RESERVED_ANYWHERE, true, true),
        (RESERVED_IN_REQUESTS, true, false),
        (RESERVED_IN_RESPONSES, false, true),
    ] {
        for &(pattern, meaning) in table {
            let name = example(pattern);
            let reserved_anywhere = RESERVED_ANYWHERE.iter().any(|&(p, _)| p == pattern);
            for (field, requests, responses) in fields {
                let refused = (requests && in_requests) || (responses && in_responses);
                // the same name may sit in the other side's table too
                let other = |t: &[(&str, &str)]| {
                    t.iter().any(|&(p, _)| match p.strip_suffix('*') {
                        Some(prefix) => name.starts_with(prefix),
                        None => name == p,
                    })
                };
                let refused = refused
                    || reserved_anywhere
                    || (requests && other(RESERVED_IN_REQUESTS))
                    || (responses && other(RESERVED_IN_RESPONSES));
                let json = with(&format!(r#""{field}": "{}""#, name.to_uppercase()));
                match load(&json) {
                    Err(e) if refused => {
                        assert_eq!(e.field, field, "{name}");
                        assert!(e.reason.contains("is reserved"), "{e}");
                        assert!(e.reason.contains(meaning) || !reserved_anywhere, "{e}");
                        rows += 1;
                    }
                    Ok(_) if !refused => {}
                    other => panic!("{field} = {name}: refused {refused} expected, got {other:?}"),
                }
            }
        }
    }
    assert!(rows > 150, "{rows} refusals");
}
