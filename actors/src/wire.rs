//! Types that cross a process boundary, one module per boundary; every JSON-RPC method is one
//! type of `venus_methods` (manager) or `worker_methods` (worker).

pub mod auth;
pub mod commcid;
pub mod go_json;
pub mod hex;
pub mod jsonrpc;
pub mod method;
pub mod processor;
pub mod seal_proof;
pub mod venus;
pub mod venus_methods;
pub mod venus_post;
pub mod worker_api;
pub mod worker_methods;

#[cfg(test)]
mod golden_tests;
