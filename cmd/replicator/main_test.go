package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the replicator executable: the
// first-party plugins are started by re-executing os.Executable() as
// "plugin serve NAME", which under "go test" is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "plugin" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
