//! Choosing a pool: a weighted pick from one random draw (new users), and
//! weighted rendezvous hashing of a key (`hashOn`, ramp keys).

pub mod rendezvous;
pub mod weighted;

pub use rendezvous::{key_hash, mix, Rendezvous};
pub use weighted::WeightedPicker;
