package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sqlitereplicator/replicator/core/capture"
	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/segment"
)

func runReplicate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "replicate", "[flags] DB_PATH REPLICA_URL... | -config FILE")
	configPath := fs.String("config", "", "config file (YAML) listing databases and replicas; SIGHUP reloads it")
	syncInterval := fs.Duration("sync-interval", time.Second, "at most one upload per replica per interval; a commit after a quiet period goes out at once")
	snapshotInterval := fs.Duration("snapshot-interval", 24*time.Hour, "how often to take a snapshot")
	retention := fs.Duration("retention", 0, "how far back point-in-time restores keep working; older objects are deleted from the replicas (0 keeps everything)")
	compression := fs.String("compression", "lz4", "compression of what is captured and uploaded: lz4, zstd or none; compression: in a config file takes precedence")
	stateDir := fs.String("state-dir", "", "local state directory (default: beside the database)")
	addr := fs.String("addr", defaultAddr, `address serving /metrics, /healthz and /databases ("" disables); overrides addr: in the config`)
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info); overrides log-level: in the config")
	logFormat := fs.String("log-format", "", "text or json (default text); overrides log-format: in the config")
	keyFile := fs.String("key-file", "", "encrypt what is uploaded with the first key of this file (see docs/encryption.md); with -config, use encryption: in the file")
	keyEnv := fs.String("key-env", "", "encrypt with the key in this environment variable")
	execCmd := fs.String("exec", "", "run this command (the application) as a child; forward SIGINT/SIGTERM/SIGHUP to it; when it exits, sync a last time and exit with its exit code")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := replicateConfig(fs, *configPath, config.Encryption{KeyFile: *keyFile, KeyEnv: *keyEnv})
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// The level can change on reload; the format is fixed at start.
	lv, format, err := logSettings(cfg, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(lv)
	{
		re := *e
		re.log = newLogger(e.stderr, format, level)
		e = &re
		slog.SetDefault(e.log)
	}
	if !set["addr"] && cfg.Addr != nil {
		*addr = *cfg.Addr
	}

	var reg *metrics.Registry
	var ln net.Listener
	if *addr != "" {
		if ln, err = listenHTTP(*addr); err != nil {
			return err
		}
		defer ln.Close()
		reg = metrics.New()
		re := *e
		re.pluginRestarted = reg.PluginRestart
		e = &re
	}
	// Before any database is opened; it fails harmlessly when one was
	// (a second run in one process, as in tests).
	if err := capture.DisableLookaside(); err != nil {
		e.log.Debug("SQLite lookaside stays on", "err", err)
	}
	if _, err := segment.ParseCompression(*compression); err != nil {
		return usagef("-compression %q: use lz4 (the default), zstd or none", *compression)
	}
	flags := config.Settings{SyncInterval: *syncInterval, SnapshotInterval: *snapshotInterval, Retention: *retention, Compression: *compression}
	d := newDaemon(e, flags, *stateDir, reg)
	// Replication runs under its own context: with -exec it outlives the
	// signals (forwarded to the application) until the application exits.
	dctx, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAll()
	if err := d.apply(dctx, cfg, true); err != nil {
		stopAll()
		_ = d.wait()
		return err
	}
	runCtx, finishExec := startExec(ctx, e, *execCmd) // -exec: see exec.go
	if ln != nil {
		stop := serveHTTP(ln, newHTTPHandler(reg, d.statuses, time.Now, d.healthReasons), e.log)
		defer stop()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go d.watchDirs(dctx)
	for running := true; running; {
		select {
		case <-runCtx.Done():
			running = false
		case <-d.changed:
			if d.idle() {
				running = false
			}
		case <-hup:
			if *configPath == "" {
				e.log.Info("SIGHUP: no config file to reload (started without -config)")
				continue
			}
			nc, err := config.Load(*configPath)
			var nlv slog.Level
			var nformat string
			if err == nil {
				nlv, nformat, err = logSettings(nc, *logLevel, *logFormat)
			}
			if err != nil {
				e.log.Error("SIGHUP: the config file has an error; keeping the running configuration", "err", err)
				continue
			}
			e.log.Info("SIGHUP: reloading the configuration", "config", *configPath)
			level.Set(nlv)
			if nformat != format {
				e.log.Warn("SIGHUP: log-format changes take effect at the next start", "running", format, "configured", nformat)
			}
			if err := d.apply(dctx, nc, false); err != nil {
				e.log.Error("SIGHUP: reloaded with errors", "err", err)
			}
		}
	}
	stopAll()
	return finishExec(d.wait())
}

// logSettings is the log level and format: the flags' when given, else
// the config file's.
func logSettings(c *config.Config, flagLevel, flagFormat string) (slog.Level, string, error) {
	lv, format := c.LogLevel, c.LogFormat
	if flagLevel != "" {
		if err := lv.UnmarshalText([]byte(flagLevel)); err != nil {
			return 0, "", usagef("-log-level %q: use debug, info, warn or error", flagLevel)
		}
	}
	if flagFormat != "" {
		format = flagFormat
	}
	switch format {
	case "", "text":
		return lv, "text", nil
	case "json":
		return lv, "json", nil
	}
	return 0, "", usagef("-log-format %q: use text or json", format)
}

// newLogger is the daemon's logger on w.
func newLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// replicateConfig is the configuration replicate runs: the file, or one
// database with replicas given by URL.
func replicateConfig(fs *flag.FlagSet, configPath string, enc config.Encryption) (*config.Config, error) {
	switch {
	case configPath != "" && fs.NArg() > 0:
		return nil, usagef("give either -config FILE or DB_PATH REPLICA_URL..., not both")
	case configPath != "" && enc != (config.Encryption{}):
		return nil, usagef("-key-file and -key-env apply to DB_PATH REPLICA_URL...; with -config, give each database an encryption: setting")
	case enc.KeyFile != "" && enc.KeyEnv != "":
		return nil, usagef("give -key-file or -key-env, not both (a key file may hold several keys)")
	case configPath != "":
		cfg, err := config.Load(configPath)
		if err != nil {
			return nil, err
		}
		if len(cfg.DBs) == 0 && len(cfg.Dirs) == 0 && len(cfg.Follows) == 0 {
			return nil, fmt.Errorf("%s lists no databases (dbs:) and nothing to follow (follow:)", configPath)
		}
		return cfg, nil
	case fs.NArg() >= 2:
		db := config.DBConfig{Path: fs.Arg(0)}
		for i, u := range fs.Args()[1:] {
			rc, err := config.ParseURL(u)
			if err != nil {
				return nil, usageError{Msg: err.Error()}
			}
			if fs.NArg() > 2 {
				rc.Name = fmt.Sprintf("%s%d", rc.Type, i+1)
			}
			rc.Encryption = enc
			db.Replicas = append(db.Replicas, rc)
		}
		return &config.Config{DBs: []config.DBConfig{db}, LogFormat: "text"}, nil
	default:
		return nil, usagef("need DB_PATH and at least one REPLICA_URL, or -config FILE")
	}
}
