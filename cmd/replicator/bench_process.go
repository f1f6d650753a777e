package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// withDaemonProcess is withApp with `replicator replicate` replicating the
// database to the local directory replica/NAME from a process of its own,
// as it runs beside an application in production. The throughput
// comparison uses it: a daemon in the application's process would share
// its garbage collector's pauses and SQLite's process-wide mutexes, which
// a real application does not. After f, it checks that the replica holds
// every commit.
func (b *bench) withDaemonProcess(ctx context.Context, name string, f func(*benchApp) (commits int, err error)) error {
	return b.withApp(name, b.autoCkpt, func(app *benchApp) error {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		logPath := filepath.Join(b.work, name+".log")
		logf, err := os.Create(logPath)
		if err != nil {
			return err
		}
		defer logf.Close()
		url := "file://" + filepath.Join(b.work, "replica", name)
		cmd := exec.Command(self, "replicate", "-addr", addr, "-sync-interval", b.sync.String(), app.path, url)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start the daemon: %w", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				<-exited
			}
		}()
		fail := func(err error) error {
			return fmt.Errorf("%w\ndaemon log (last lines):\n%s", err, tail(logPath, 20))
		}
		base := "http://" + addr
		ready, err := b.waitReplicated(ctx, base, exited, 0)
		if err != nil {
			return fail(err)
		}
		commits, err := f(app)
		if err != nil {
			return err
		}
		if _, err := b.waitReplicated(ctx, base, exited, ready+uint64(commits)); err != nil {
			return fail(fmt.Errorf("after %d commits: %w", commits, err))
		}
		return nil
	})
}

// waitReplicated waits until the daemon at base has captured at least
// txid and its replica holds what it captured, and returns the captured
// txid.
func (b *bench) waitReplicated(ctx context.Context, base string, exited <-chan error, txid uint64) (uint64, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		sts, ok, err := allReplicated(ctx, base, 1)
		if ok {
			if got := sts[0].TxID; got >= txid {
				return got, nil
			}
			err = fmt.Errorf("captured txid %d, want %d", sts[0].TxID, txid)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the replica did not hold the database's position within a minute: %v", err)
		}
		select {
		case err := <-exited:
			return 0, errors.Join(errors.New("the daemon exited"), err)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
