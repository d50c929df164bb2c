//! The pure part of a WindowPoSt slot (its states and events) and the I/O of each step.

pub mod plan;
pub mod steps;
