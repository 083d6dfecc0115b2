//! End-to-end tests: the real `callvault` binary on loopback, driven by a SIPREC client
//! written for these tests (and by sipp), checked by what a user sees: SIP responses, the
//! catalog through the CLI, and the audio in the WAV files.

mod support;

mod api;
mod baresip;
mod calls;
mod check_config;
mod cli;
mod compliance;
mod concealment;
mod dashboard;
mod dialects;
mod drain;
mod exports;
mod fidelity;
mod lifecycle;
mod limits;
mod loadgen;
mod metrics;
mod nodes;
mod notify;
mod objects;
mod operations;
mod packaging;
mod passthrough;
mod passthrough_srtp;
mod security;
mod sipp;
mod srtp;
mod storage;
mod test_call;
mod tls;
mod transport;
