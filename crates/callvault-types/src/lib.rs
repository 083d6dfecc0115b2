//! The vocabulary callvault's crates share: why a recording ended, where a digit came from,
//! what a leg counted, and the SRTP keying of a stream. Each is defined once here so that the
//! media plane, the recorder, the catalog and the API speak of the same thing with the same type,
//! never with a string compared in several places.
//!
//! This crate depends on nothing but serde and thiserror: the hot-path crate (media) and the database crate
//! (catalog) can both use it without depending on each other.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod counters;
mod srtp;
mod vocabulary;

pub use counters::{LegCounters, SourceCounters};
pub use srtp::{KeyLengthError, Mki, SrtpKeying, SrtpSuite};
pub use vocabulary::{DtmfSource, EndReason, Party, RecordingMode, UnknownName};
