//! Harnesses shared by the cargo-fuzz targets (`filter/fuzz`) and the native
//! test that replays their corpora: each takes arbitrary bytes and drives one
//! part of the filter the way the glue does. None may panic.

use rand_core::SeedableRng;

use sticky_split_core::choice::key_hash;
use sticky_split_core::config::Config;
use sticky_split_core::cookie::{Payload, Verdict};
use sticky_split_core::decide::Reason;
use sticky_split_core::metrics;
use sticky_split_core::rng::Prng;
use sticky_split_core::stream::{conclude, respond, route, Counts, Exchange};
use sticky_split_core::testing::FakeStream;

const KEY: &[u8] = b"fuzzing key, 32 bytes long .....";
const OLD_KEY: &[u8] = b"an earlier key, 32 bytes long...";

fn env(name: &str) -> Option<Vec<u8>> {
    Some(if name == "OLD" { OLD_KEY } else { KEY }.to_vec())
}

/// Configs the request harness chooses from (by the input's first byte).
const CONFIGS: &[&str] = &[
    r#"{"pools": [{"name": "pool1", "weight": 80}, {"name": "pool2", "weight": 20}]}"#,
    r#"{"pools": [{"name": "a", "weight": 0}, {"name": "b.v1_2", "weight": 3, "cluster": "outbound|80|b|svc"},
        {"name": "c", "weight": 0, "evict": true}],
       "cookie": {"name": "s", "signingKeyEnv": "K", "previousSigningKeyEnvs": ["OLD"], "sameSite": "None"},
       "generation": "g7",
       "clusterHeader": "x-cluster", "debugHeader": "x-debug",
       "rules": [{"match": {"headers": [{"name": "x-beta", "regex": "(yes|on)[0-9]*"}]}, "pool": "a", "sticky": true},
                 {"match": {"path": {"prefix": "/v2/"}, "query": [{"name": "p", "present": true}]}, "pool": "c"},
                 {"match": {"cookies": [{"name": "t", "suffix": "x"}]}, "pool": "b.v1_2"}],
       "hashOn": {"header": "x-user"}}"#,
    r#"{"pools": [{"name": "stable", "weight": 90}, {"name": "canary", "weight": 10}], "affinity": "ramp",
       "hashOn": {"cookie": "session"}, "cookie": {"name": "s", "maxAge": 0}}"#,
    r#"{"pools": [{"name": "p1", "weight": 2}, {"name": "p.2", "weight": 1}, {"name": "p3", "weight": 0}],
       "cookie": {"name": "s", "absoluteTimeout": 3600, "idleTimeout": 600, "signingKeyEnv": "K",
                  "partitioned": true},
       "generation": "g1", "sessionHeader": "x-session", "failover": {"ejectAfter": 1, "ejectSeconds": 5}}"#,
    r#"{"pools": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
       "cookie": {"name": "s", "idleTimeout": 2}, "affinity": "ramp", "sessionHeader": "x-s"}"#,
];

thread_local! {
    /// The fixed configs, parsed once per process (parsing per input would
    /// make the cookie and request targets mostly measure config parsing).
    static PARSED: Vec<Config> = CONFIGS
        .iter()
        .filter_map(|c| Config::from_json_with_env(c.as_bytes(), env).ok())
        .collect();
}

/// How many of the fixed configs parse, of how many: all must, or the
/// harnesses silently lose one.
pub fn fixed_configs() -> (usize, usize) {
    (PARSED.with(Vec::len), CONFIGS.len())
}

/// Config parsing and validation, then the cookie and header strings a
/// valid config produces.
pub fn config(data: &[u8]) {
    if let Ok(c) = Config::from_json_with_env(data, env) {
        for i in 0..c.pools.len() {
            if let Some(v) = c.encode_cookie(Payload::Pool(i)) {
                let _ = c.set_cookie_header(&v, i % 2 == 0);
                let _ = c.decode_cookie(v.as_bytes());
            }
        }
        let _ = c.pool_for_key(key_hash(data));
    }
}

/// Cookie header parsing and cookie value checks. The first byte splits the
/// input into a cookie name and a header.
pub fn cookie(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (name, header) = rest.split_at(usize::from(n).min(rest.len()));
    let _ = sticky_split_core::request::cookies::values(header, name).count();
    PARSED.with(|configs| {
        for c in configs {
            for value in
                sticky_split_core::request::cookies::values(header, c.cookie.name.as_bytes())
            {
                let _ = c.decode_cookie(value);
            }
            let _ = c.decode_cookie(header);
        }
    });
}

/// A whole request: the first byte picks a config (or, if 255, the bytes up
/// to the first NUL are a config to try); the rest are header lines
/// `name: value`, with `:path` among them if the input says so.
pub fn request(data: &[u8]) {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let mut parsed = None;
    if selector == 255 {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let (json, tail) = rest.split_at(end);
        parsed = Config::from_json_with_env(json, env).ok();
        rest = tail.get(1..).unwrap_or_default();
    }
    let config = match parsed {
        Some(c) => c,
        None => match PARSED.with(|c| c.get(usize::from(selector) % c.len().max(1)).cloned()) {
            Some(c) => c,
            None => return,
        },
    };
    let headers: Vec<(String, Vec<u8>)> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            // the name ends at the first ':' after its first byte (names like
            // ":path" start with one)
            let colon = line.iter().skip(1).position(|&b| b == b':')? + 1;
            let (name, value) = line.split_at(colon);
            let value = value.get(1..).unwrap_or_default();
            Some((
                String::from_utf8_lossy(name).to_ascii_lowercase(),
                value.to_vec(),
            ))
        })
        .collect();
    let seed = key_hash(data);
    let mut rng = Prng::seed_from_u64(seed);
    let has_body = seed & 2 == 0;
    let mut source = FakeStream {
        headers,
        // a clock around the present, moved by the input
        now: 1_800_000_000 + seed % 100_000,
        // a status, a grpc-status and flags from the input, values that are
        // not numbers among them
        status: Some(
            match seed % 7 {
                0 => format!("{}x", seed % 1000),
                n => format!("{}", 100 + (seed >> 8) % 500 + n),
            }
            .into_bytes(),
        ),
        response: vec![(
            "grpc-status".to_string(),
            format!("{}", (seed >> 16) % 20).into_bytes(),
        )],
        trailers: (seed & 8 == 0)
            .then(|| {
                (
                    "grpc-status".to_string(),
                    format!("{}", (seed >> 24) % 20).into_bytes(),
                )
            })
            .into_iter()
            .collect(),
        flags: if seed & 1 == 0 { 0x20 } else { seed >> 32 },
        ..FakeStream::default()
    };
    if seed & 4 == 0 {
        source.response.pop();
    }
    let fresh = source.clone();
    let mut health = config.health();
    let routed = route(&config, &mut source, &mut rng, health.as_mut(), has_body);
    let d = routed.decision;
    let pool = config
        .pool(d.pool)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let _ = metrics::slot(d.pool, d.reason);
    assert_eq!(d.cookie.is_some(), routed.set_cookie.is_some());
    if let (Some(payload), Some(header)) = (d.cookie, &routed.set_cookie) {
        assert_reads_back(&config, header, payload, &pool);
    }
    let planned_cookie = routed.set_cookie.clone();
    let plan = respond(&config, &mut source, &mut rng, health.as_mut(), routed);
    if plan.pending {
        let trailer = source.trailers.first().map(|(_, v)| v.clone());
        let done = conclude(
            &config,
            &mut source,
            health.as_mut(),
            d.pool,
            trailer.as_deref(),
        );
        assert!(done.counts.iter().count() <= 2);
    }
    match plan.failed_over {
        Some(moved) => {
            assert_ne!(moved.pool, d.pool, "failed over to the failing pool");
            if let (Some(payload), Some(header)) = (moved.cookie, &plan.set_cookie) {
                assert_reads_back(&config, header, payload, &pool);
            }
        }
        None => assert_eq!(plan.set_cookie, planned_cookie),
    }
    lifecycle(config, fresh, seed, has_body);
}

/// The same stream through [`Exchange`], callback by callback as the glue
/// calls it: the request is counted exactly once (none when Envoy answered
/// without asking any pool), and the stream's end leaves no probe held.
fn lifecycle(config: Config, mut source: FakeStream, seed: u64, has_body: bool) {
    let mut rng = Prng::seed_from_u64(seed);
    let mut health = config.health();
    // request counter slots come first in the layout
    let request_slots = config.pools.len() * Reason::ALL.len();
    let mut exchange = Exchange::new(std::rc::Rc::new(config));
    source.local_reply = seed & 32 == 0;
    let mut counted = usize::from(
        exchange
            .on_request(&mut source, Some(&mut rng), health.as_mut(), !has_body)
            .count
            .is_some(),
    );
    let requests = |counts: &Counts| counts.iter().filter(|&s| s < request_slots).count();
    let mut unanswered = false;
    if seed & 16 == 0 {
        let plan = exchange.on_response(&mut source, Some(&mut rng), health.as_mut());
        assert!(plan.is_some(), "a routed request's response has a plan");
        if let Some(plan) = plan {
            counted += requests(&plan.counts);
            unanswered = plan.unanswered;
        }
        if let Some(done) = exchange.on_trailers(&mut source, health.as_mut()) {
            assert!(done.counts.iter().count() <= 2);
            counted += requests(&done.counts);
        }
    }
    if let Some(done) = exchange.on_end(&mut source, health.as_mut()) {
        assert!(done.counts.iter().count() <= 3);
        counted += requests(&done.counts);
    }
    assert_eq!(counted, usize::from(!unanswered), "the request's count");
    assert!(
        exchange.on_end(&mut source, health.as_mut()).is_none(),
        "a stream ends once"
    );
}

/// What we write must read back as the payload decided.
fn assert_reads_back(config: &Config, header: &str, payload: Payload, pool: &str) {
    let prefix = format!("{}=", config.cookie.name);
    let value = header
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default();
    let again = config.decode_cookie(value.as_bytes());
    assert!(
        again == Verdict::Valid(payload),
        "issued cookie {header:?} for {pool} does not read back: {again:?}"
    );
}

/// The pool health board that workers share: the input as the stored bytes
/// (what another plugin, a torn write or a racing writer may leave), then
/// workers acting on it as the input says. Reading must never panic nor
/// leave a pool ejected past its time.
pub fn board(data: &[u8]) {
    use std::cell::RefCell;
    use std::rc::Rc;

    use sticky_split_core::health::{Board, Health, HealthStore, Stored};

    let board = Board::decode(data);
    assert_eq!(
        Board::decode(&board.encode()),
        board,
        "a board reads back as written"
    );

    #[derive(Clone)]
    struct Mem(Rc<RefCell<(Option<Vec<u8>>, u32)>>);
    impl HealthStore for Mem {
        fn load(&mut self) -> Option<(Vec<u8>, u32)> {
            let s = self.0.borrow();
            s.0.clone().map(|b| (b, s.1))
        }
        fn store(&mut self, bytes: &[u8], version: u32) -> Stored {
            let mut s = self.0.borrow_mut();
            if version != 0 && version != s.1 {
                return Stored::Conflict;
            }
            *s = (Some(bytes.to_vec()), s.1.wrapping_add(1));
            Stored::Yes
        }
    }
    let mem = Mem(Rc::new(RefCell::new((Some(data.to_vec()), 1))));
    let names: Vec<String> = ["pool1", "pool2", "p.3"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    let start = 1_800_000_000u64;
    let mut workers: Vec<Health> = (1..=3u64)
        .map(|me| {
            Health::new(vec![1, 1, 0], 2, 10).share(names.clone(), Box::new(mem.clone()), me, start)
        })
        .collect();
    let mut now = start;
    for &op in data.iter().take(256) {
        let (w, pool) = (usize::from(op % 3), usize::from((op >> 2) % 3));
        let Some(h) = workers.get_mut(w) else {
            continue;
        };
        now += u64::from(op >> 5);
        match op >> 4 & 3 {
            0 => {
                h.record(pool, true, now);
            }
            1 => {
                h.record(pool, false, now);
            }
            2 => h.sync(now),
            _ => {
                let down = h.out_of_service(now);
                assert!(down.as_ref().is_none_or(|d| d.len() == names.len()));
                h.claim_probe(pool, now);
            }
        }
    }
    // whatever happened, every ejection ends: an ejection lasts 10 s, a
    // probe lease as long; then some worker may send the probe
    let later = now + 21;
    let mut usable = vec![false; names.len()];
    for h in &mut workers {
        h.sync(later);
        let down = h.out_of_service(later).unwrap_or_default();
        for (pool, u) in usable.iter_mut().enumerate() {
            *u |= !down.get(pool).copied().unwrap_or(false);
        }
    }
    assert!(
        usable.iter().all(|&u| u),
        "a pool is out of service for every worker: {usable:?}"
    );
}
