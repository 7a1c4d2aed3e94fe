//! Helpers shared by the native tests.

use rand_core::Rng;
use sticky_split_core::config::Config;
use sticky_split_core::decide::{self, Conditions, Decision};
use sticky_split_core::request::{Headers, Request};
use sticky_split_core::rng::Prng;

use super::stats::{chi_square, chi_square_sf};

/// Significance of every split test here.
pub const ALPHA: f64 = 1e-6;

/// The signing key the environment variable `KEY` holds in [`config`].
pub const KEY: &[u8] = b"an example signing key, 40 bytes long..";

/// A config that must be accepted; `KEY` is set in its environment.
pub fn config(json: &str) -> Config {
    Config::from_json_with_env(json.as_bytes(), |name| {
        (name == "KEY").then(|| KEY.to_vec())
    })
    .unwrap_or_else(|e| panic!("{e}\n{json}"))
}

/// `{"pools": POOLS, "cookie": {"name": "s"}}`.
pub fn pools_config(pools: &str) -> Config {
    config(&format!(
        r#"{{"pools": {pools}, "cookie": {{"name": "s"}}}}"#
    ))
}

/// Request headers from (name, value) pairs, with a `:path` of `/` unless
/// one is given.
pub fn headers(pairs: &[(&str, &[u8])]) -> Headers {
    let mut h: Headers = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect();
    if !h.iter().any(|(n, _)| n == ":path") {
        h.insert(0, (":path".into(), b"/".to_vec()));
    }
    h
}

/// Decides for one request whose headers are all in `req`, with every pool
/// in service and no clock.
pub fn decide<R: Rng + ?Sized>(c: &Config, req: &Request, rng: &mut R) -> Decision {
    let cond = Conditions::default();
    decide::decide(c, req, cond, rng)
}

/// Decides for a request with these (name, text value) headers.
pub fn run(c: &Config, pairs: &[(&str, &str)], rng: &mut Prng) -> Decision {
    let pairs: Vec<(&str, &[u8])> = pairs.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    decide(c, &Request::new(&headers(&pairs)), rng)
}

/// Decides for a request with these Cookie headers (and a path of /).
pub fn with_cookies(c: &Config, cookies: &[&[u8]], rng: &mut Prng) -> Decision {
    let pairs: Vec<(&str, &[u8])> = cookies.iter().map(|v| ("cookie", *v)).collect();
    decide(c, &Request::new(&headers(&pairs)), rng)
}

/// The name of the pool a decision chose.
pub fn name(c: &Config, d: &Decision) -> String {
    c.pools[d.pool].name.clone()
}

/// Passes when `observed` is consistent with proportions `weights` at ALPHA.
pub fn assert_fits(observed: &[u64], weights: &[u64], what: &str) {
    let (stat, df) = chi_square(observed, weights);
    let p = chi_square_sf(stat, df);
    assert!(
        p >= ALPHA,
        "{what}: observed {observed:?} vs weights {weights:?}: chi2 {stat:.2}, p {p:.2e}"
    );
}
