#!/usr/bin/env bash
# Every check and test of the workspace, as CI runs them.
#
# Needs: cargo with cargo-nextest, python3, the MySQL client library (Debian: libmariadb-dev)
# and a MySQL/MariaDB server whose URL is in DAMOCLES_TEST_MYSQL_URL (default below); the
# tests create and drop their own databases there. The first run also generates the 2KiB
# Groth parameters into $FIL_PROOFS_PARAMETER_CACHE (about 12 minutes, 5 GB of memory, once
# per machine).
set -euo pipefail
cd "$(dirname "$0")/.."

export DAMOCLES_TEST_MYSQL_URL="${DAMOCLES_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
export FIL_PROOFS_PARAMETER_CACHE="${FIL_PROOFS_PARAMETER_CACHE:-/var/tmp/filecoin-proof-parameters}"
export FIL_PROOFS_PARENT_CACHE="${FIL_PROOFS_PARENT_CACHE:-/var/tmp/filecoin-parents}"
export FIL_PROOFS_CACHE_DIR="${FIL_PROOFS_CACHE_DIR:-/var/tmp/filecoin-proof-cache}"
FEATURES=(--features damocles-manager/mysql)

cargo fmt --all --check
cargo clippy --workspace --all-targets "${FEATURES[@]}" -- -D warnings
# The default build (SQLite only) must keep compiling on a machine without libmariadb-dev.
cargo check --workspace --bins
cargo build --workspace --bins "${FEATURES[@]}"
./target/debug/damocles-worker params --sector-size 2KiB
cargo nextest run --workspace "${FEATURES[@]}" --no-fail-fast
