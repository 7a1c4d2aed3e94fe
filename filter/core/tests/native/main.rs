//! Native tests of the core over its public API: one module per concept,
//! helpers in `helpers` and `stats`, written once.

// A test fails by panicking; the filter's own lints are for the module.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod helpers;
mod stats;

mod choice;
mod config;
mod cookie_value;
mod cookies;
mod decide;
mod docs;
mod exchange;
mod layout;
mod metrics;
mod outcomes;
mod reads;
mod request;
mod response_plan;
mod rng;
mod rollout;
mod rotation;
mod session_expiry;
mod sessions;
mod shared_health;
mod token;
