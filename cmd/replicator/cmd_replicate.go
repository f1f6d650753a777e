package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
)

func runReplicate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "replicate", "[flags] DB_PATH REPLICA_URL... | -config FILE")
	configPath := fs.String("config", "", "config file (YAML) listing databases and replicas")
	syncInterval := fs.Duration("sync-interval", time.Second, "at most one upload per replica per interval; a commit after a quiet period goes out at once")
	snapshotInterval := fs.Duration("snapshot-interval", 24*time.Hour, "how often to take a snapshot")
	retention := fs.Duration("retention", 0, "how far back point-in-time restores keep working; older objects are deleted from the replicas (0 keeps everything)")
	stateDir := fs.String("state-dir", "", "local state directory (default: beside the database)")
	addr := fs.String("addr", defaultAddr, `address serving /metrics, /healthz and /databases ("" disables)`)
	execCmd := fs.String("exec", "", "run this command (the application) as a child; forward SIGINT/SIGTERM/SIGHUP to it; when it exits, sync a last time and exit with its exit code")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var dbs []config.DBConfig
	switch {
	case *configPath != "" && fs.NArg() > 0:
		return usagef("give either -config FILE or DB_PATH REPLICA_URL..., not both")
	case *configPath != "":
		cfg, err := config.Load(*configPath)
		if err != nil {
			return err
		}
		if len(cfg.DBs) == 0 {
			return fmt.Errorf("%s lists no databases (dbs:)", *configPath)
		}
		dbs = cfg.DBs
	case fs.NArg() >= 2:
		db := config.DBConfig{Path: fs.Arg(0)}
		for i, u := range fs.Args()[1:] {
			rc, err := config.ParseURL(u)
			if err != nil {
				return usageError{err.Error()}
			}
			if fs.NArg() > 2 {
				rc.Name = fmt.Sprintf("%s%d", rc.Type, i+1)
			}
			db.Replicas = append(db.Replicas, rc)
		}
		dbs = []config.DBConfig{db}
	default:
		return usagef("need DB_PATH and at least one REPLICA_URL, or -config FILE")
	}

	var runners []*replicate.DB
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var reg *metrics.Registry
	var ln net.Listener
	if *addr != "" {
		var err error
		if ln, err = listenHTTP(*addr); err != nil {
			return err
		}
		defer ln.Close()
		reg = metrics.New()
		re := *e
		re.pluginRestarted = reg.PluginRestart
		e = &re
	}
	for _, dc := range dbs {
		var reps []*replica.Replica
		for _, rc := range dc.Replicas {
			r, closeFn, err := openReplica(ctx, e, rc)
			if err != nil {
				return err
			}
			closers = append(closers, closeFn)
			reps = append(reps, r)
		}
		cfg := replicate.Config{
			Path: dc.Path, Replicas: reps, StateDir: *stateDir,
			SyncInterval: pick(dc.SyncInterval, *syncInterval), SnapshotInterval: pick(dc.SnapshotInterval, *snapshotInterval),
			Retention: pick(dc.Retention, *retention),
			Logger:    e.log, Metrics: reg,
		}
		d, err := replicate.Open(ctx, cfg)
		if err != nil {
			return fmt.Errorf("replicate %s: %w", dc.Path, err)
		}
		p := d.Captured()
		e.log.Info("replicating", "db", dc.Path, "generation", p.Generation, "txid", p.TxID, "replicas", len(reps))
		runners = append(runners, d)
	}
	ctx, finishExec := startExec(ctx, e, *execCmd) // -exec: see exec.go
	if ln != nil {
		stop := serveHTTP(ln, newHTTPHandler(reg, func() []replicate.Status {
			sts := make([]replicate.Status, len(runners))
			for i, d := range runners {
				sts[i] = d.Status()
			}
			return sts
		}, time.Now), e.log)
		defer stop()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(runners))
	for i, d := range runners {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = d.Run(ctx) }()
	}
	wg.Wait()
	return finishExec(errors.Join(errs...))
}

func pick(v, def time.Duration) time.Duration {
	if v != 0 {
		return v
	}
	return def
}
