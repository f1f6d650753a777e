package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/internal/testenv"
)

// TestReplicateRestoreEachBackend runs the engine against every backend
// through its plugin process: replicate a database being written to,
// restore it, and compare.
func TestReplicateRestoreEachBackend(t *testing.T) {
	e := &env{stdout: os.Stdout, stderr: os.Stderr, log: newTestLogger(t)}
	for name, rc := range testenv.Backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "app.db")
			app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
				t.Fatal(err)
			}
			r, closeFn, err := openReplica(ctx, e, rc)
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, SyncInterval: 20 * time.Millisecond, Logger: e.log})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- d.Run(runCtx) }()
			for i := range 200 {
				if _, err := app.Exec("INSERT INTO t (v) VALUES (randomblob(?))", 500+i*20); err != nil {
					t.Fatal(err)
				}
				if i == 120 {
					if _, err := app.Exec("DELETE FROM t WHERE id % 2 = 0; VACUUM"); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "restored.db")
			res, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{Logger: e.log})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sha3sum(t, out), sha3sum(t, path); got != want {
				t.Fatalf("restore from %s (txid %d) differs from the source", name, res.TxID)
			}
		})
	}
}

// TestSecretsNeverPrinted: secrets given on the command line appear in no
// output, also when the backend rejects them.
func TestSecretsNeverPrinted(t *testing.T) {
	const secret = "SEKRIT-9f8e7d6c5b4a"
	endpoint := os.Getenv("TEST_S3_ENDPOINT")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:1"
	}
	urls := []string{
		"s3://replicator-test/x?endpoint=" + endpoint + "&access-key-id=AKIAEXAMPLE&secret-access-key=" + secret,
		"sftp://user:" + secret + "@127.0.0.1:1/path",
		"abs://devstoreaccount1@replicator-test/x?endpoint=http://127.0.0.1:1/devstoreaccount1&account-key=" + secret,
	}
	for _, u := range urls {
		for _, args := range [][]string{{"generations", u}, {"restore", "-o", filepath.Join(t.TempDir(), "o.db"), u}, {"replicate", "/nonexistent.db", u}} {
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if code == 0 {
				t.Errorf("%s with a bad replica exited 0", args[0])
			}
			if strings.Contains(stdout.String()+stderr.String(), secret) {
				t.Fatalf("replicator %s printed the secret:\n%s%s", args[0], stdout.String(), stderr.String())
			}
		}
	}
}
