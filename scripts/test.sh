#!/usr/bin/env bash
# Every check and test of the workspace, as CI runs them. On a machine with only cargo it sets
# itself up: as root it installs the Debian packages it lacks (libmariadb-dev, pkg-config,
# mariadb-server, galera-4, rsync, python3, and chromium with chromium-driver for the console's
# browser test) and cargo-nextest; otherwise it prints the one
# command to run and stops. Unless DAMOCLES_TEST_MYSQL_URL names a server, it starts its own MariaDB in a
# temporary directory on a free loopback port for the run, and stops it afterwards; the tests
# create and drop their own databases there.
#
# The first run also generates the 2KiB Groth parameters into $FIL_PROOFS_PARAMETER_CACHE
# (about 22 minutes: 10 for snap-up's update circuit, 12 for PoRep; 5 GB of memory; once per
# machine).
set -euo pipefail
cd "$(dirname "$0")/.."

export FIL_PROOFS_PARAMETER_CACHE="${FIL_PROOFS_PARAMETER_CACHE:-/var/tmp/filecoin-proof-parameters}"
export FIL_PROOFS_PARENT_CACHE="${FIL_PROOFS_PARENT_CACHE:-/var/tmp/filecoin-parents}"
export FIL_PROOFS_CACHE_DIR="${FIL_PROOFS_CACHE_DIR:-/var/tmp/filecoin-proof-cache}"
FEATURES=(--features damocles-manager/mysql)

say() { echo "test.sh: $*" >&2; }

# --- What the run needs -------------------------------------------------------------------
missing=()
dpkg -s libmariadb-dev >/dev/null 2>&1 || missing+=(libmariadb-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v python3 >/dev/null || missing+=(python3)
# The Galera test's cluster: the provider, and rsync for a joining node's copy.
[ -e /usr/lib/galera/libgalera_smm.so ] || missing+=(galera-4)
command -v rsync >/dev/null || missing+=(rsync)
# The console's browser test: a real headless chromium, driven through chromedriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ -z "${DAMOCLES_TEST_MYSQL_URL:-}" ]; then
  { [ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null; } \
    || missing+=(mariadb-server)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing ${missing[*]}; install them, then run this script again:"
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest (a few minutes, once)"
  cargo install cargo-nextest --locked
fi

# --- A MariaDB of our own, unless one was named --------------------------------------------
if [ -z "${DAMOCLES_TEST_MYSQL_URL:-}" ]; then
  db_dir="$(mktemp -d -t damocles-test-mariadb.XXXXXX)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # mariadbd runs as root only when told to; anyone else runs it as themselves.
  user="$(id -un)"
  [ "$user" = root ] && chown mysql: "$db_dir" 2>/dev/null && user=mysql
  say "starting MariaDB in $db_dir on 127.0.0.1:$port"
  mariadb-install-db --no-defaults --user="$user" --datadir="$db_dir/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$db_dir/install.log" 2>&1 \
    || { cat "$db_dir/install.log" >&2; exit 1; }
  /usr/sbin/mariadbd --no-defaults --user="$user" --datadir="$db_dir/data" \
    --socket="$db_dir/mysqld.sock" --pid-file="$db_dir/mysqld.pid" \
    --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --max-connections=1000 --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=2 \
    >"$db_dir/mariadbd.log" 2>&1 &
  db_pid=$!
  stop_db() {
    kill "$db_pid" 2>/dev/null && wait "$db_pid" 2>/dev/null
    rm -rf "$db_dir"
  }
  trap stop_db EXIT
  for _ in $(seq 60); do
    mariadb --no-defaults --socket="$db_dir/mysqld.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
    kill -0 "$db_pid" 2>/dev/null || { cat "$db_dir/mariadbd.log" >&2; exit 1; }
    sleep 1
  done
  # Over TCP, root comes from 127.0.0.1, not "localhost".
  mariadb --no-defaults --socket="$db_dir/mysqld.sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    CREATE DATABASE IF NOT EXISTS test;"
  export DAMOCLES_TEST_MYSQL_URL="mysql://root@127.0.0.1:$port/test"
fi
say "MySQL tests use $DAMOCLES_TEST_MYSQL_URL"

# --- Checks and tests ----------------------------------------------------------------------
cargo fmt --all --check
cargo clippy --workspace --all-targets "${FEATURES[@]}" -- -D warnings
# The default build (SQLite only) must keep compiling on a machine without libmariadb-dev.
cargo check --workspace --bins
cargo build --workspace --bins "${FEATURES[@]}"
./target/debug/damocles-worker params --sector-size 2KiB
cargo nextest run --workspace "${FEATURES[@]}" --no-fail-fast
