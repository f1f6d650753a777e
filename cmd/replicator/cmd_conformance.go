package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/sqlitereplicator/replicator/internal/install"
)

// runConformance is "replicator conformance". The suite is in an executable
// of its own, replicator-conformance (cmd/replicator-conformance): it links
// package conformance and with it the testing package, whose code would
// otherwise sit in the daemon's memory. This finds it as the plugins are
// found (beside this executable, else on PATH) and runs it with the same
// arguments, telling it this executable for the daemon of its scenarios.
func runConformance(ctx context.Context, e *env, args []string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	path, err := install.Find(self, install.Conformance)
	if err != nil {
		return fmt.Errorf("%w; it runs the suite: install it beside replicator "+
			"(go install github.com/sqlitereplicator/replicator/cmd/%s@VERSION, "+
			"or from a checkout: go build -o DIR/ ./cmd/...)", err, install.Conformance)
	}
	argv := append([]string{path}, args...)
	env := append(os.Environ(), install.ReplicatorEnv+"="+self)
	// Replacing this process passes the terminal, signals and the exit
	// status through as they are. It cannot when the output goes elsewhere
	// than this process's own (tests capture it) or the system has no
	// exec (Windows): then it runs as a child.
	if runtime.GOOS != "windows" && e.stdout == os.Stdout && e.stderr == os.Stderr {
		if err := syscall.Exec(path, argv, env); err != nil {
			return fmt.Errorf("run %s: %w", path, err)
		}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	// On SIGINT or SIGTERM, let it stop as it would if run directly: it
	// reports the tests that were running.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	err = cmd.Run()
	if cmd.ProcessState == nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	if code := exitCode(cmd.ProcessState, err); code != exitOK {
		// It printed its own error.
		return exitError{code: code}
	}
	return nil
}
