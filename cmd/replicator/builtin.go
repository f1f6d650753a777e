package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/sqlitereplicator/replicator/plugins/fs"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

// firstPartyNames are the first-party storage plugins. Each is an
// executable of its own, replicator-NAME (cmd/replicator-NAME), so that the
// daemon links none of the cloud SDKs: their code and start-up allocations
// would otherwise sit in the daemon's memory, and in every plugin process,
// whichever backends a config uses.
func firstPartyNames() []string { return []string{"azure", "fs", "gcs", "s3", "sftp"} }

// compiled are the first-party plugins compiled into this executable as
// well, served by re-executing it as "plugin serve NAME". fs is, so that a
// local-directory replica works with the replicator executable alone; it
// links nothing that replicator does not link already.
func compiled() map[string]sdk.OpenFunc {
	return map[string]sdk.OpenFunc{"fs": fs.Open}
}

// isFirstParty reports whether name is a first-party plugin.
func isFirstParty(name string) bool { return slices.Contains(firstPartyNames(), name) }

// errPluginMissing is returned when a first-party plugin's executable is
// not installed.
var errPluginMissing = errors.New("plugin executable not installed")

// firstPartyPlugin returns the host-side handle of first-party plugin name,
// looked for in this order: the executable replicator-NAME beside this one
// (how a release installs them, and the leanest process); this executable,
// if the plugin is compiled in; replicator-NAME on PATH.
func firstPartyPlugin(e *env, name string) (*host.Plugin, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("plugin %s: find this executable: %w", name, err)
	}
	path, args, err := locatePlugin(self, name)
	if err != nil {
		return nil, err
	}
	return host.New(host.Config{Name: name, Path: path, Args: args, Logger: e.log, OnRestart: e.restartHook(name), IdleTimeout: pluginIdleTimeout}), nil
}

// pluginIdleTimeout is how long a plugin process runs with nothing to do
// before it is stopped; the next request starts it again. A daemon whose
// databases are idle then holds no plugin process (about 15 MB each), at
// the cost of starting one when a write follows a quiet minute.
const pluginIdleTimeout = time.Minute

// locatePlugin returns the executable and arguments that serve first-party
// plugin name for the replicator executable self.
func locatePlugin(self, name string) (path string, args []string, err error) {
	exe := "replicator-" + name
	beside := filepath.Join(filepath.Dir(self), exe)
	if isExecutable(beside) {
		return beside, nil, nil
	}
	if _, ok := compiled()[name]; ok {
		return self, []string{"plugin", "serve", name}, nil
	}
	if p, err := exec.LookPath(exe); err == nil {
		return p, nil, nil
	}
	return "", nil, fmt.Errorf("plugin %s: %w: %s is neither beside %s nor on PATH; install it beside replicator "+
		"(go install github.com/sqlitereplicator/replicator/cmd/...@VERSION installs replicator and every plugin; "+
		"from a checkout: go build -o DIR/ ./cmd/...)", name, errPluginMissing, exe, self)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// restartHook returns the host's restart callback for plugin name.
func (e *env) restartHook(name string) func() {
	if e.pluginRestarted == nil {
		return nil
	}
	return func() { e.pluginRestarted(name) }
}
