package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the replicator executable: the
// first-party plugins are started by re-executing os.Executable() as
// "plugin serve NAME", which under "go test" is this binary; "bench scale"
// re-executes it as the daemon ("replicate") and for "restore".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "plugin" || os.Args[1] == "replicate" || os.Args[1] == "restore") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
