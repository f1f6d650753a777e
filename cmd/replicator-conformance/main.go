// Command replicator-conformance runs the storage contract suite and the
// replication scenarios (package conformance) against storage backends and
// prints a result matrix. Users run it as "replicator conformance", which
// finds this executable beside replicator (or on PATH) and runs it with the
// same arguments (docs/conformance.md). It is an executable of its own
// because the suite links the testing package: kept out of replicator, that
// code does not sit in the memory of every daemon.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sqlitereplicator/replicator/internal/cli"
)

// env is the command's output streams and logger.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	slog.SetDefault(e.log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Exit(stderr, "replicator conformance", runConformance(ctx, e, args))
}
