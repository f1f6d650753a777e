package main

import (
	"os"
	"testing"

	"github.com/sqlitereplicator/replicator/internal/install"
	"github.com/sqlitereplicator/replicator/internal/testenv"
)

// TestMain lets the test binary stand in for the replicator executable: the
// fs plugin, compiled in, is started by re-executing os.Executable() as
// "plugin serve fs", which under "go test" is this binary; "bench scale"
// re-executes it as the daemon ("replicate") and for "restore". The other
// first-party plugins and replicator-conformance are executables of their
// own: testenv.Run builds them, and the replicator executable, into one
// directory, as an installation has them, and puts it first on PATH, where
// this binary finds them.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "plugin" || os.Args[1] == "replicate" || os.Args[1] == "restore") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(testenv.Run(m))
}

// replicatorBin returns the replicator executable TestMain built, with the
// plugin executables beside it.
func replicatorBin(t *testing.T) string {
	t.Helper()
	return testenv.Bin(t, install.Replicator)
}
