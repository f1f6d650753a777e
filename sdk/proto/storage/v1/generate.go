// Package storagev1 holds the generated gRPC code of storage protocol v1.
//
// The generated files are committed so that building needs no code
// generator. Regenerate them with `go generate ./sdk/...`, which needs protoc
// on PATH and installs the Go generators at the versions pinned in gen.sh;
// TestGeneratedCodeIsCurrent fails when the committed files are stale.
package storagev1

//go:generate bash gen.sh .
