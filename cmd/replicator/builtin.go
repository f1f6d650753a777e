package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/sqlitereplicator/replicator/internal/install"
	"github.com/sqlitereplicator/replicator/plugins/fs"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

// compiled are the first-party plugins compiled into this executable as
// well (install.CompiledIn), served by re-executing it as "plugin serve
// NAME". fs is, so that a local-directory replica works with the replicator
// executable alone; it links nothing that replicator does not link already.
func compiled() map[string]sdk.OpenFunc {
	return map[string]sdk.OpenFunc{"fs": fs.Open}
}

// firstPartyPlugin returns the host-side handle of first-party plugin name,
// found as install.LocatePlugin finds it for this executable.
func firstPartyPlugin(e *env, name string) (*host.Plugin, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("plugin %s: find this executable: %w", name, err)
	}
	path, args, err := install.LocatePlugin(self, name)
	if err != nil {
		return nil, err
	}
	return host.New(host.Config{Name: name, Path: path, Args: args, Logger: e.log, OnRestart: e.restartHook(name), IdleTimeout: pluginIdleTimeout, OnIdleStop: releaseMemory}), nil
}

// pluginIdleTimeout is how long a plugin process runs with nothing to do
// before it is stopped; the next request starts it again. A daemon whose
// databases are idle then holds no plugin process (about 15 MB each), at
// the cost of starting one when a write follows a quiet minute.
const pluginIdleTimeout = time.Minute

// releaseMemory gives the heap memory the Go runtime holds free back to
// the system, once a plugin was stopped for a quiet minute: the daemon
// is idle then, and what a burst of work (a start-up's snapshots and
// uploads, the plugin's client) freed would otherwise stay resident for
// as long as it stays idle, under the collector's next goal (1.4–1.8 MB
// of 41 MB with 100 idle databases). It costs one collection.
func releaseMemory() { debug.FreeOSMemory() }

// restartHook returns the host's restart callback for plugin name.
func (e *env) restartHook(name string) func() {
	if e.pluginRestarted == nil {
		return nil
	}
	return func() { e.pluginRestarted(name) }
}
