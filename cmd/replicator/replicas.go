package main

import (
	"fmt"

	"github.com/sqlitereplicator/replicator/core/config"
)

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
