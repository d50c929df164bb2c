//! Types that cross a process boundary, one module per boundary.

pub mod jsonrpc;
pub mod processor;
pub mod venus;
pub mod worker_api;
