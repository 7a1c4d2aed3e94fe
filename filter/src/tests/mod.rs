//! Native tests of the core that span modules: config validation tables and
//! the statistics of the decision.

mod config_table;
mod decide_table;
mod fuzz_corpus;
mod rollout_table;
pub mod stats;
