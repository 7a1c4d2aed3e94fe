//! sticky-split's core: everything the filter decides, in plain Rust with no
//! host calls and no proxy-wasm in its dependencies, tested natively. The
//! module crate (`filter/src`) reads from Envoy what a plan asks for and
//! applies the plans verbatim.
//!
//! Modules, each depending only on those listed before it (checked by a
//! native test), so one request's walk goes one way: `stream` asks `decide`,
//! which asks the modules above it, and nothing below calls back up:
//! - `token`: RFC character classes for names;
//! - `request`: the read-only header view, the Cookie-header scan, and the
//!   protocol a request speaks;
//! - `outcome`: what a response says: its class, and what Envoy's response
//!   flags say about reaching the pool;
//! - `choice`: weighted pick and weighted rendezvous hashing;
//! - `health`: pool ejection for failover (each VM's view of the gateway's
//!   board);
//! - `cookie`: the affinity value codec and the Set-Cookie template;
//! - `rules`: compiled override rules (`rules` in the config) and their
//!   string matches;
//! - `config`: the plugin config, raw (serde) and validated;
//! - `decide`: the per-request decision, and when the first Cookie header
//!   settles it;
//! - `metrics`: counter names and batching;
//! - `rng`: the per-VM generator;
//! - `stream`: one HTTP stream (`Exchange`): what to read from the host and
//!   when, and the plans the glue applies;
//! - `testing`: the test double of the host (feature `testing`, never in the
//!   module).

pub mod choice;
pub mod config;
pub mod cookie;
pub mod decide;
pub mod health;
pub mod metrics;
pub mod outcome;
pub mod request;
pub mod rng;
pub mod rules;
pub mod stream;
pub mod token;

#[cfg(feature = "testing")]
pub mod testing;
