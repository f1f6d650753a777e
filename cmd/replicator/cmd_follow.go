package main

import (
	"context"
	"time"

	"github.com/sqlitereplicator/replicator/core/follow"
)

func runFollow(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "follow", "-o LOCAL_DB [-interval 1s] (REPLICA_URL | -config FILE DB_PATH)")
	out := fs.String("o", "", "local database to keep up to date (restored first when missing); read it, never write it")
	interval := fs.Duration("interval", time.Second, "how often the replica is polled (one LIST request per poll)")
	configPath := fs.String("config", "", "config file; the argument is then a database path")
	replicaName := fs.String("replica", "", "with -config: the replica to follow (default: the first)")
	keys := addKeyFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("need exactly one REPLICA_URL or (with -config) DB_PATH")
	}
	if *out == "" {
		return usagef("-o LOCAL_DB is required")
	}
	if *interval <= 0 {
		return usagef("-interval must be positive")
	}
	rc, err := replicaArg(e, fs.Arg(0), *configPath, *replicaName)
	if err != nil {
		return err
	}
	r, closeFn, err := openReplica(ctx, e, rc)
	if err != nil {
		return err
	}
	defer closeFn()
	if err := keys.apply(r); err != nil {
		return err
	}
	e.log.Info("following", "replica", rc.String(), "output", *out, "interval", interval.String())
	return keyHint(follow.New(follow.Config{Replica: r, Path: *out, Interval: *interval, Logger: e.log}).Run(ctx))
}
