//! Connection tracking and RST classification.
//!
//! A [`Tracker`] takes decoded TCP segments in capture order and places each in its connection
//! the way Zeek does: who is originator (including the `^` flip when the SYN was missed), the
//! history string with Zeek's letters and repeat rules, the endpoint states that give
//! `conn_state`, and when one 5-tuple becomes several connections (a new SYN after a close,
//! traffic after the close delay, an unanswered SYN after the attempt delay). Every RST becomes
//! a [`ResetEvent`] with its cause and forged-reset evidence. Rows are held until their
//! connection ends (look-ahead for `data_after_rst` and the final `conn_state`), then released.
//!
//! Everything runs on packet time, never the wall clock; memory is bounded by the number of
//! concurrent connections (expiry on close and inactivity, and a hard cap that evicts the
//! connection closest to expiry).

mod classify;
mod tracker;
pub mod zeek;

pub use classify::{injected_rule, Cause, Evidence};
pub use tracker::{
    carry_file_checksum, read_carry_file, read_carry_file_owned, write_carry_file, Carry,
    FlowConfig, FlowStats, StreamCarry, Tracker, CARRY_VERSION,
};

#[cfg(test)]
mod difftest;
#[cfg(test)]
mod perf;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
