package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/sqliteuri"
	"github.com/sqlitereplicator/replicator/sdk/storecount"
)

// The request count of "bench scale": one database replicated by a daemon
// in this process (replicate.Open and Run, as "replicator replicate" runs
// each database, defaults but the sync interval) to a local directory
// through the real out-of-process fs plugin, with every request to the
// plugin counted on the way. Counting in the storage client is exact,
// which nothing outside the daemon can be: a stat leaves no trace in the
// replica directory.

// loadDaemon is the in-process daemon of the request count.
type loadDaemon struct {
	d     *replicate.DB
	store *storecount.Store
	db    *sql.DB
	ins   *sql.Stmt
	// stop ends the daemon and closes everything; calls after the
	// first return the first's result.
	stop func() error
}

// startLoadDaemon creates a small database under work, replicates it to a
// local directory with every request counted, and returns once the
// replica holds its first snapshot.
func startLoadDaemon(ctx context.Context, e *env, work string, syncInterval time.Duration) (_ *loadDaemon, err error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(work, "load.db")
	db, err := openWAL(path)
	if err != nil {
		return nil, err
	}
	var closers []func() error
	var once sync.Once
	var closeErr error
	closeAll := func() error {
		once.Do(func() {
			var errs []error
			for i := len(closers) - 1; i >= 0; i-- {
				errs = append(errs, closers[i]())
			}
			closeErr = errors.Join(errs...)
		})
		return closeErr
	}
	closers = append(closers, db.Close)
	defer func() {
		if err != nil {
			_ = closeAll()
		}
	}()
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, v TEXT NOT NULL)"); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	ins, err := db.Prepare("INSERT INTO t (at, v) VALUES (?, ?)")
	if err != nil {
		return nil, err
	}
	closers = append(closers, ins.Close)
	p, err := firstPartyPlugin(e, "fs")
	if err != nil {
		return nil, err
	}
	closers = append(closers, p.Close)
	st, err := p.Open(ctx, map[string]string{"path": filepath.Join(work, "load-replica")})
	if err != nil {
		return nil, fmt.Errorf("open the fs plugin: %w", err)
	}
	closers = append(closers, st.Close)
	cs := storecount.New(st)
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{replica.New("file", cs, e.log)}, SyncInterval: syncInterval, Compression: segment.DefaultCompression, Logger: e.log})
	if err != nil {
		return nil, fmt.Errorf("replicate %s: %w", path, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	closers = append(closers, func() error {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("in-process daemon: %w", err)
		}
		return nil
	})
	if err := d.Sync(ctx); err != nil {
		return nil, fmt.Errorf("first upload of %s: %w", path, err)
	}
	return &loadDaemon{d: d, store: cs, db: db, ins: ins, stop: closeAll}, nil
}

// openWAL opens (creating) a WAL-mode database the way applications do.
func openWAL(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	db, err := sql.Open("sqlite", sqliteuri.For(path, q))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// write commits one row per transaction at rate per second for d, on a
// fixed schedule (a commit behind schedule goes at once), and returns the
// commits made.
func (l *loadDaemon) write(ctx context.Context, rate float64, d time.Duration) (int, error) {
	start := time.Now()
	every := time.Duration(float64(time.Second) / rate)
	n := 0
	for {
		next := start.Add(time.Duration(n) * every)
		if next.Sub(start) >= d {
			return n, nil
		}
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-time.After(wait):
			}
		}
		if _, err := l.ins.ExecContext(ctx, time.Now().UnixNano(), "a row of about a hundred bytes, as an application would write it: 0123456789abcdef"); err != nil {
			return n, fmt.Errorf("commit %d: %w", n+1, err)
		}
		n++
	}
}
