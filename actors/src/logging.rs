//! How both binaries log: to stderr, level from their own environment variable or `RUST_LOG`,
//! with the proofs library's chatty stages kept at warn unless asked for.

use std::io::IsTerminal;

const DEFAULT: &str = "info,storage_proofs_core=warn,storage_proofs_porep=warn,storage_proofs_post=warn,filecoin_proofs=warn,bellperson=warn";

/// Sets up logging to stderr, filtered by the environment variable `env_var` (default `info`).
pub fn init(env_var: &str) {
    let filter = std::env::var(env_var)
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT.into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .init();
}
