//! The pure parts of a sealing thread: states, plans, failures, the sector record and its files.

pub mod failure;
pub mod plan;
pub mod quota;
pub mod sector;
pub mod steps;
pub mod store;
