#!/usr/bin/env bash
# Regenerates storage.pb.go and storage_grpc.pb.go into the directory given
# as $1 with pinned generator versions.
set -euo pipefail
out=$(cd "${1:-.}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN=$bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
command -v protoc >/dev/null || { echo "gen.sh: protoc not found; install it (Debian: apt-get install protobuf-compiler)" >&2; exit 1; }
protoc -I "$here" \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  storage.proto
