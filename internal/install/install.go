// Package install knows how a replicator installation is laid out, and so
// how one of its executables finds another: the replicator executable, the
// first-party storage plugins replicator-NAME, and replicator-conformance,
// side by side in one directory (how a release and "go install ./cmd/..."
// install them), or else on PATH.
package install

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
)

// Executable names.
const (
	Replicator  = "replicator"
	Conformance = "replicator-conformance"
)

// PluginNames are the first-party storage plugins. Each is an executable of
// its own, replicator-NAME (cmd/replicator-NAME), so that the daemon links
// none of the cloud SDKs: their code and start-up allocations would
// otherwise sit in the daemon's memory, and in every plugin process,
// whichever backends a config uses.
func PluginNames() []string { return []string{"azure", "fs", "gcs", "s3", "sftp"} }

// IsPlugin reports whether name is a first-party plugin.
func IsPlugin(name string) bool { return slices.Contains(PluginNames(), name) }

// CompiledIn reports whether first-party plugin name is compiled into the
// replicator executable as well, served by running it as "replicator plugin
// serve NAME". fs is, so that a local-directory replica works with the
// replicator executable alone.
func CompiledIn(name string) bool { return name == "fs" }

// ErrPluginMissing is returned when a first-party plugin's executable is
// not installed.
var ErrPluginMissing = errors.New("plugin executable not installed")

// LocatePlugin returns the executable and arguments that serve first-party
// plugin name for the replicator executable replicator, looked for in this
// order: replicator-NAME beside it (how a release installs them, and the
// leanest process); replicator itself, if the plugin is compiled in;
// replicator-NAME on PATH.
func LocatePlugin(replicator, name string) (path string, args []string, err error) {
	exe := "replicator-" + name
	if p, ok := Beside(replicator, exe); ok {
		return p, nil, nil
	}
	if CompiledIn(name) {
		return replicator, []string{"plugin", "serve", name}, nil
	}
	if p, err := exec.LookPath(exe); err == nil {
		return p, nil, nil
	}
	return "", nil, fmt.Errorf("plugin %s: %w: %s is neither beside %s nor on PATH; install it beside replicator "+
		"(go install github.com/sqlitereplicator/replicator/cmd/...@VERSION installs replicator and every plugin; "+
		"from a checkout: go build -o DIR/ ./cmd/...)", name, ErrPluginMissing, exe, replicator)
}

// Find returns the executable exe beside the executable self, or else the
// one on PATH.
func Find(self, exe string) (string, error) {
	if p, ok := Beside(self, exe); ok {
		return p, nil
	}
	p, err := exec.LookPath(exe)
	if err != nil {
		return "", fmt.Errorf("%s is neither beside %s nor on PATH", exe, self)
	}
	return p, nil
}

// Beside returns the path of exe in the directory of self, and whether an
// executable file is there.
func Beside(self, exe string) (string, bool) {
	p := filepath.Join(filepath.Dir(self), exe)
	fi, err := os.Stat(p)
	return p, err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// ReplicatorEnv names the replicator executable that started
// replicator-conformance ("replicator conformance" sets it), the daemon its
// replication scenarios run by default.
const ReplicatorEnv = "REPLICATOR_EXECUTABLE"
