#!/usr/bin/env bash
# The main job on a fresh machine: replicate a live SQLite database to a
# local directory while it is written to, stop, restore, and compare.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
work=${1:-$(mktemp -d)}
mkdir -p "$work"
CGO_ENABLED=0 go build -o "$work/" ./cmd/...   # replicator and its plugin executables, side by side
db=$work/app.db
sqlite3 "$db" 'PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT);' >/dev/null

"$work/replicator" replicate "$db" "file://$work/backup" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for i in $(seq 1 20); do
  sqlite3 -cmd '.timeout 5000' "$db" "INSERT INTO t(v) VALUES ('row $i at ' || datetime('now'));"
  sleep 0.1
done
sleep 1
kill -TERM $pid && wait $pid
trap - EXIT

"$work/replicator" generations "file://$work/backup"
rm -f "$work/restored.db"
"$work/replicator" restore -o "$work/restored.db" "file://$work/backup"
if [ "$(sqlite3 "$db" .sha3sum)" = "$(sqlite3 "$work/restored.db" .sha3sum)" ]; then
  echo "restored database is identical to $db ($(sqlite3 "$work/restored.db" 'SELECT count(*) FROM t') rows); files in $work"
else
  echo "restored database differs from $db" >&2; exit 1
fi
