//! sticky-split: a proxy-wasm HTTP filter that splits traffic between backend
//! pools by weight and keeps each user on their pool with a cookie.
//!
//! The core (config, cookies, pool choice, the decision) is plain Rust with no
//! host calls, tested natively. `filter` is the thin proxy-wasm glue, built
//! only for wasm32.

pub mod affinity;
pub mod b64;
pub mod config;
pub mod cookie;
pub mod decide;
pub mod hash;
pub mod json;
pub mod metrics;
pub mod pick;
pub mod request;
pub mod rng;
pub mod rules;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod filter;

#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod tests;
