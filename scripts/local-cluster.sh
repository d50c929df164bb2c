#!/usr/bin/env bash
# A complete local cluster in the foreground: a mock-chain manager on SQLite and one worker
# from config-examples/worker.mock.toml, sealing real 2KiB sectors. Ctrl-C stops everything.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
run="${DAMOCLES_LOCAL_DIR:-$repo/mock-tmp}"
export FIL_PROOFS_PARAMETER_CACHE="${FIL_PROOFS_PARAMETER_CACHE:-/var/tmp/filecoin-proof-parameters}"
export DAMOCLES_PATH="$run/manager-home"
mkdir -p "$run" "$DAMOCLES_PATH"

echo "building (the first build takes about 5 minutes)..."
(cd "$repo" && cargo build --bins --quiet)
bin="$repo/target/debug"

porep=$(ls "$FIL_PROOFS_PARAMETER_CACHE"/v28-stacked-proof-of-replication-merkletree-poseidon_hasher-8-0-0-sha256_hasher-032d3138*.params 2>/dev/null || true)
update=$(ls "$FIL_PROOFS_PARAMETER_CACHE"/v28-empty-sector-update-merkletree-poseidon_hasher-8-0-0-*.params 2>/dev/null || true)
if [ -z "$porep" ] || [ -z "$update" ]; then
  echo "2KiB Groth parameters are missing: the worker generates them in the background now"
  echo "(about 22 minutes and 5 GB of memory, once per machine, into $FIL_PROOFS_PARAMETER_CACHE);"
  echo "threads seal up to C1 meanwhile and show 'waiting for parameters' at C2 (snap-up at snap_prove)."
fi

cleanup() { kill "${watcher:-}" "${worker:-}" "${manager:-}" 2>/dev/null || true; wait 2>/dev/null || true; echo "stopped"; }
trap cleanup EXIT
trap "exit 130" INT TERM

"$bin/damocles-manager" daemon run -c "$repo/config-examples/manager.mock.toml" --listen 127.0.0.1:1789 \
  2> "$run/manager.log" &
manager=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/1789) 2>/dev/null && break; sleep 0.2; done
cp "$repo/config-examples/worker.mock.toml" "$run/worker.toml"
# The worker's token (the manager keeps only its hash): made once, kept beside the worker's config.
if [ ! -s "$run/worker.token" ]; then
  "$bin/damocles-manager" util worker token revoke mock-worker >/dev/null 2>&1 || true
  "$bin/damocles-manager" util worker token create mock-worker > "$run/worker.token"
fi
(cd "$run" && exec "$bin/damocles-worker" daemon -c worker.toml 2> "$run/worker.log") &
worker=$!

# Milestones, printed as they happen: the parameters, the first sealed sector, the first proof.
milestones() {
  local start=$SECONDS params="" sector="" post=""
  [ -n "$porep" ] && [ -n "$update" ] && params=done
  while sleep 5; do
    if [ -z "$params" ] \
      && ls "$FIL_PROOFS_PARAMETER_CACHE"/v28-stacked-proof-of-replication-merkletree-poseidon_hasher-8-0-0-sha256_hasher-032d3138*.vk >/dev/null 2>&1 \
      && ls "$FIL_PROOFS_PARAMETER_CACHE"/v28-empty-sector-update-merkletree-poseidon_hasher-8-0-0-*.vk >/dev/null 2>&1; then
      params=done; echo ">> Groth parameters ready after $(( (SECONDS - start) / 60 )) min"
    fi
    if [ -z "$sector" ] && "$bin/damocles-manager" util sealer sectors list 2>/dev/null | grep -qw Finished; then
      sector=done; echo ">> first sector sealed and on the (mock) chain after $(( SECONDS - start )) s"
    fi
    if [ -z "$post" ] && "$bin/damocles-manager" util worker wdpost list --all 2>/dev/null | grep -qw Succeed; then
      post=done; echo ">> first WindowPoSt job proven after $(( SECONDS - start )) s"
    fi
    [ -n "$params" ] && [ -n "$sector" ] && [ -n "$post" ] && return 0
  done
}
milestones &
watcher=$!

cat <<MSG

local cluster running (Ctrl-C stops it)
  files:   $run  (mock-tmp/store1..6 and mock-tmp/remote, manager-home/ with the SQLite database and
           the admin token, worker.token: the worker's token)
  logs:    $run/manager.log  $run/worker.log
  try:
    export DAMOCLES_PATH=$DAMOCLES_PATH
    $bin/damocles-manager util worker list
    $bin/damocles-manager util worker token list
    $bin/damocles-manager util worker info mock-worker
    $bin/damocles-manager util worker wdpost list --all
    $bin/damocles-worker worker -c $run/worker.toml list
    $bin/damocles-worker worker -c $run/worker.toml pause --index 1
    $bin/damocles-worker worker -c $run/worker.toml resume --index 1
    sqlite3 $DAMOCLES_PATH/damocles.sqlite 'select * from sectors'
  a deal, snapped into a proven CC sector (thread #3 is the snap-up thread):
    echo 'a client said: keep this' > $run/deal.txt
    $bin/damocles-manager util mock deals import --miner 10000 $run/deal.txt
    for d in 0 1 2 3; do $bin/damocles-manager util sealer snap fetch 10000 \$d; done
    $bin/damocles-manager util sealer sectors list      # Kind CC -> Snapped, then WindowPoSt proves it
    $bin/damocles-manager util mock deals list          # Waiting -> Assigned -> Active
  milestones (parameters ready, first sector sealed, first WindowPoSt proven) print here as ">> ...".
  WindowPoSt windows and sectors (windows close after 30s; a miss faults its sectors):
    $bin/damocles-manager util sealer proving missed
    $bin/damocles-manager util sealer proving faults
    $bin/damocles-manager util sealer sectors export-json t010000 1 > $run/s1.json
    $bin/damocles-manager util sealer sectors abort t010000 5          # a dry run; --really-do-it
MSG
wait
