//! The actors of the damocles runtime (worker side) and the wire types shared with the manager.
//!
//! Architecture invariant: this crate knows nothing of databases, HTTP servers or proofs. It
//! speaks to the manager through [`wire::jsonrpc`] and to proofs through processor children.
#![warn(missing_docs)]

pub mod config_file;
pub mod doctor;
pub mod durable;
pub mod limits;
pub mod logging;
pub mod metrics;
mod names;
pub mod processor;
pub mod processors;
pub mod sealing;
pub mod size;
pub mod supervisor;
pub mod thread;
pub mod wdpost;
pub mod wire;
