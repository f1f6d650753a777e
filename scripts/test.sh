#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine or a developer's:
# installs what the tests need at pinned versions, checks formatting, vet
# and staticcheck, then runs `go test -race` with the storage test servers
# started on loopback (and stopped afterwards, also on failure).
#
# Extra arguments go to `go test`, e.g. scripts/test.sh -run TestFS ./plugins/fs
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2
tools=${REPLICATOR_TOOLS_DIR:-$HOME/.cache/replicator-tools}
mkdir -p "$tools"

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

echo "== installing test dependencies"
apt_install protobuf-compiler sqlite3
if [ ! -x "$tools/staticcheck-$STATICCHECK_VERSION" ]; then
  GOBIN="$tools" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  mv "$tools/staticcheck" "$tools/staticcheck-$STATICCHECK_VERSION"
fi
scripts/test-servers.sh install

echo "== gofmt, go vet, staticcheck"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '\.pb\.go$') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change these files (run gofmt -w):"; echo "$unformatted"; exit 1
fi
go vet ./...
"$tools/staticcheck-$STATICCHECK_VERSION" ./...

echo "== go test"
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)
# TestConformanceMatrix writes the replication-scenario result matrix here;
# it is printed after the tests, also when they failed.
matrix_file=$(mktemp)
status=0
REPLICATOR_CONFORMANCE_MATRIX="$matrix_file" \
  scripts/test-servers.sh run -- go test -race -count=1 -timeout 40m "${pkgs[@]}" || status=$?

echo "== conformance matrix (replication scenarios x backends, from TestConformanceMatrix)"
if [ -s "$matrix_file" ]; then cat "$matrix_file"; else echo "(not produced: TestConformanceMatrix did not run)"; fi
rm -f "$matrix_file"
[ "$status" -eq 0 ] || exit "$status"

if [ $# -eq 0 ]; then
  echo "== long tests (a database past 1 GiB; without -race, which would make it take an hour)"
  REPLICATOR_LONG=1 go test -count=1 -timeout 20m -run 'TestLong' ./cmd/replicator
fi
