package main

import (
	"os"
	"sort"

	"github.com/sqlitereplicator/replicator/plugins/azure"
	"github.com/sqlitereplicator/replicator/plugins/fs"
	"github.com/sqlitereplicator/replicator/plugins/gcs"
	"github.com/sqlitereplicator/replicator/plugins/s3"
	"github.com/sqlitereplicator/replicator/plugins/sftp"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

// builtins are the first-party storage plugins compiled into this binary.
// They run out-of-process all the same, through "replicator plugin serve".
func builtins() map[string]sdk.OpenFunc {
	return map[string]sdk.OpenFunc{
		"azure": azure.Open,
		"fs":    fs.Open,
		"gcs":   gcs.Open,
		"s3":    s3.Open,
		"sftp":  sftp.Open,
	}
}

func builtinNames() []string {
	var names []string
	for n := range builtins() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// builtinPlugin returns the host-side handle of first-party plugin name:
// this executable, re-executed as "plugin serve NAME".
func builtinPlugin(e *env, name string) (*host.Plugin, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return host.New(host.Config{Name: name, Path: self, Args: []string{"plugin", "serve", name}, Logger: e.log, OnRestart: e.restartHook(name)}), nil
}

// restartHook returns the host's restart callback for plugin name.
func (e *env) restartHook(name string) func() {
	if e.pluginRestarted == nil {
		return nil
	}
	return func() { e.pluginRestarted(name) }
}
