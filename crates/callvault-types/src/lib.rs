//! The vocabulary callvault's crates share: why a recording ended, where a digit came from, and
//! what a leg counted. Each is defined once here so that the media plane, the recorder, the
//! catalog and the API speak of the same thing with the same type, never with a string compared
//! in several places.
//!
//! This crate depends on nothing but serde: the hot-path crate (media) and the database crate
//! (catalog) can both use it without depending on each other.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod counters;
mod vocabulary;

pub use counters::LegCounters;
pub use vocabulary::{DtmfSource, EndReason, UnknownName};
