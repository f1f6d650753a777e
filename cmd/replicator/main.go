// Command replicator continuously replicates SQLite databases to object
// storage and restores them. Its storage backends are plugin executables
// it starts beside itself (cmd/replicator-NAME); the fs plugin is also
// compiled in, and served by re-executing this executable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sqlitereplicator/replicator/internal/cli"
)

// Exit codes, usage errors and flag sets follow package cli, which
// replicator-conformance shares.
const (
	exitOK      = cli.ExitOK
	exitFailure = cli.ExitFailure
	exitUsage   = cli.ExitUsage
)

// usageError is a command-line mistake; it exits with exitUsage.
type usageError = cli.UsageError

func usagef(format string, args ...any) error { return cli.Usagef(format, args...) }

// command is one subcommand; the CLI reads as the table in commands().
type command struct {
	name    string
	summary string
	hidden  bool
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what commands share: output streams and the logger.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	// pluginRestarted, when set, is told of every plugin restart.
	pluginRestarted func(plugin string)
}

func commands() []command {
	return []command{
		{name: "replicate", summary: "replicate databases continuously to their replicas", run: runReplicate},
		{name: "databases", summary: "show each database of the running daemon with its replicas' position and lag", run: runDatabases},
		{name: "restore", summary: "restore a database from a replica (latest, -timestamp, -txid, -generation)", run: runRestore},
		{name: "verify", summary: "check that a replica restores consistently and equals the database (exit codes 3-5 name the failure)", run: runVerify},
		{name: "follow", summary: "keep a read-only local copy of a replica up to date, atomically for its readers", run: runFollow},
		{name: "generations", summary: "list the generations in a replica", run: runGenerations},
		{name: "snapshots", summary: "list the snapshots in a replica", run: runSnapshots},
		{name: "segments", summary: "list the segments in a replica", run: runSegments},
		{name: "plugins", summary: "list the storage backends and the protocol versions they speak", run: runPlugins},
		{name: "conformance", summary: "run the storage contract suite and the replication scenarios against a backend or plugin; print a result matrix", run: runConformance},
		{name: "bench", summary: "measure commit-to-replica lag and write throughput with and without the daemon", run: runBench},
		{name: "keygen", summary: "print a new encryption key for -key-file or a key file (docs/encryption.md)", run: runKeygen},
		{name: "version", summary: "print the version", run: runVersion},
		{name: "plugin", summary: "serve a first-party storage plugin (used internally)", hidden: true, run: runPlugin},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	slog.SetDefault(e.log)
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, e, args[1:])
		if errors.As(err, new(exitError)) {
			return exitWith(stderr, c.name, err)
		}
		return cli.Exit(stderr, "replicator "+c.name, err)
	}
	fmt.Fprintf(stderr, "replicator: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "replicator replicates SQLite databases to object storage and restores them.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: replicator COMMAND [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'replicator COMMAND -h' for a command's flags.")
}

// newFlags returns the FlagSet of command name (cli.NewFlags).
func newFlags(e *env, name, usage string) *flag.FlagSet {
	return cli.NewFlags(e.stderr, "replicator "+name, usage)
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error { return cli.ParseFlags(fs, args) }
