#!/usr/bin/env bash
# Every benchmark, each beside its baseline in the same run (BENCHMARKS.md explains each and
# holds the figures). CI does not run this: the numbers mean something only on a quiet machine.
#
#   scripts/bench.sh                 # worker, heartbeat, claims, metrics (about 10 minutes)
#   scripts/bench.sh heartbeat post  # those named: worker heartbeat claims metrics galera idle scale post seal snap
#
# `galera` starts its own three-node Galera cluster (needs galera-4 and rsync); `idle` takes
# 6 minutes and `scale` (100,000 workers on one manager and MariaDB) 11.
#
# MariaDB: DAMOCLES_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306/test; the benches make
# and drop their own databases there). `post`, `seal` and `snap` seal real 2KiB sectors: they
# make the 2KiB Groth parameters first when the cache lacks them (about 22 minutes, once per
# machine); `seal` takes about 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

url="${DAMOCLES_BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
export FIL_PROOFS_PARAMETER_CACHE="${FIL_PROOFS_PARAMETER_CACHE:-/var/tmp/filecoin-proof-parameters}"
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(worker heartbeat claims metrics)

cargo build --release --bins --features damocles-manager/mysql,damocles-tests/bench-mysql
bench=target/release/bench

run() {
  echo
  echo "== bench $*"
  "$bench" "$@"
}

for b in "${benches[@]}"; do
  case "$b" in
    worker) run worker 64 ;;
    heartbeat)
      # Every ping's rows new (the writer's worst case), then as a farm pings: 10% changed.
      run heartbeat 2000 8 "$url" 100
      run heartbeat 2000 8 "$url" 10
      ;;
    claims)
      run claims 20000 8 "$url" skip_locked
      run claims 20000 32 "$url" skip_locked
      run claims 20000 8 "$url" conditional
      run claims 20000 32 "$url" conditional
      ;;
    metrics) run metrics 8 ;;
    galera) run galera 3000 32 3 ;;
    idle) run idle 64 300 ;;
    scale) run scale 100000 600 "$url" ;;
    post | snap)
      target/release/damocles-worker params --sector-size 2KiB >/dev/null
      run "$b" 6
      ;;
    seal)
      target/release/damocles-worker params --sector-size 2KiB >/dev/null
      run seal 3
      ;;
    *) echo "bench.sh: unknown bench '$b'; choose from worker heartbeat claims galera idle scale post seal snap" >&2; exit 2 ;;
  esac
done
