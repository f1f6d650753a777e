package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

// openReplica starts the replica's plugin (out-of-process) and opens its
// store. The returned func stops the plugin.
func openReplica(ctx context.Context, e *env, rc config.ReplicaConfig) (*replica.Replica, func(), error) {
	var p *host.Plugin
	if rc.Type == "plugin" {
		p = host.New(host.Config{Name: rc.Name, Path: rc.Plugin, SHA256: rc.SHA256, Logger: e.log, OnRestart: e.restartHook(rc.Name)})
	} else {
		name := config.PluginName(rc.Type)
		if _, ok := builtins()[name]; !ok {
			return nil, nil, fmt.Errorf("replica %s: backend %q is not built into this replicator (available: %s)", rc.Name, rc.Type, strings.Join(builtinNames(), ", "))
		}
		var err error
		if p, err = builtinPlugin(e, name); err != nil {
			return nil, nil, err
		}
	}
	st, err := p.Open(ctx, rc.Settings)
	if err != nil {
		p.Close()
		where := ""
		if rc.Line > 0 {
			where = fmt.Sprintf(" (config line %d)", rc.Line)
		}
		return nil, nil, fmt.Errorf("replica %s%s: %w", rc.Name, where, err)
	}
	return replica.New(rc.Name, st, e.log), func() { st.Close(); p.Close() }, nil
}

// replicaArg resolves the replica a read-only command works on: a URL, or
// a database path looked up in -config (the first replica, or -replica).
func replicaArg(e *env, arg, configPath, name string) (config.ReplicaConfig, error) {
	if config.IsURL(arg) {
		if configPath != "" {
			return config.ReplicaConfig{}, usagef("give a replica URL or -config with a database path, not both")
		}
		return config.ParseURL(arg)
	}
	if configPath == "" {
		return config.ReplicaConfig{}, usagef("%q is not a replica URL (%s); to use a database path, give -config FILE", arg, "s3://..., file:///...")
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return config.ReplicaConfig{}, err
	}
	db, err := cfg.DB(arg)
	if err != nil {
		return config.ReplicaConfig{}, fmt.Errorf("%w in %s", err, configPath)
	}
	if name == "" {
		return db.Replicas[0], nil
	}
	for _, r := range db.Replicas {
		if r.Name == name {
			return r, nil
		}
	}
	return config.ReplicaConfig{}, fmt.Errorf("database %s has no replica named %q", db.Path, name)
}
