//! sticky-split: a proxy-wasm HTTP filter that splits traffic between backend
//! pools by weight and keeps each user on their pool with a cookie.
//!
//! The core is plain Rust with no host calls, tested natively; `glue` is the
//! only code that talks to proxy-wasm, built only for wasm32. Modules, each
//! depending only on those listed before it (checked by a native test):
//! - `token`: RFC character classes for names;
//! - `request`: the read-only header view and the Cookie-header scan;
//! - `choice`: weighted pick and weighted rendezvous hashing;
//! - `health`: pool ejection for failover (each VM's view of the gateway's
//!   board), and the response classes it judges by;
//! - `cookie`: the affinity value codec and the Set-Cookie template;
//! - `matcher`: compiled override rules (`rules` in the config) and their string matches;
//! - `config`: the plugin config, raw (serde) and validated;
//! - `decide`: the per-request decision;
//! - `metrics`: counter names and batching;
//! - `stream`: one HTTP stream: what to read from the host and when, and the
//!   plans the glue applies to the request and the response;
//! - `rng`: the per-VM generator.

pub mod choice;
pub mod config;
pub mod cookie;
pub mod decide;
pub mod health;
pub mod matcher;
pub mod metrics;
pub mod request;
pub mod rng;
pub mod stream;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod glue;

/// Harnesses shared by the cargo-fuzz targets and the native test that
/// replays their corpora; not part of the filter's API.
#[doc(hidden)]
pub mod fuzzing;
