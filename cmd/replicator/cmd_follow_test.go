package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func followRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		return -1
	}
	return n
}

func TestCLIFollow(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	repDir := filepath.Join(dir, "replica")
	out := filepath.Join(dir, "follower.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	e := &env{stdout: &logs, stderr: &logs, log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	r, closeFn, err := openReplica(ctx, e, config.ReplicaConfig{Name: "file", Type: "file", Settings: map[string]string{"path": repDir}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, SyncInterval: time.Millisecond, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	insert := func(n int) {
		for i := range n {
			if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	insert(3)

	fctx, fstop := context.WithCancel(ctx)
	fdone := make(chan error, 1)
	go func() { fdone <- runFollow(fctx, e, []string{"-interval", "20ms", "-o", out, "file://" + repDir}) }()
	wait := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for followRows(t, out) != want {
			if time.Now().After(deadline) {
				t.Fatalf("follower has %d rows, want %d; log:\n%s", followRows(t, out), want, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(3)
	insert(4)
	wait(7)
	fstop()
	if err := <-fdone; err != nil {
		t.Fatalf("follow: %v", err)
	}
	if !strings.Contains(logs.String(), "follow: applied") {
		t.Errorf("no summary line logged for an applied position:\n%s", logs.String())
	}
}

func TestCLIFollowUsage(t *testing.T) {
	for _, args := range [][]string{
		{"follow", "file:///tmp/x"},
		{"follow", "-o", "x.db"},
		{"follow", "-o", "x.db", "-interval", "0s", "file:///tmp/x"},
		{"follow", "-o", "x.db", "not-a-url"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("replicator %v: exit %d, want %d; stderr: %s", args, code, exitUsage, stderr.String())
		}
	}
}
