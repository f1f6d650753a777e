package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// replicated makes a database with a file replica holding n transactions
// and returns the database path and the replica directory.
func replicated(t *testing.T, n int) (string, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	repDir := filepath.Join(dir, "replica")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	e := &env{stdout: os.Stdout, stderr: os.Stderr, log: newTestLogger(t)}
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
	for i := range n {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return path, repDir
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCLIRestoreAndListings(t *testing.T) {
	path, repDir := replicated(t, 5)
	url := "file://" + repDir
	cfg := filepath.Join(t.TempDir(), "replicator.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("dbs:\n  - path: %s\n    replicas:\n      - type: file\n        path: %s\n", path, repDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.db")

	if code, stdout, stderr := runCLI(t, "restore", "-config", cfg, "-o", out, path); code != 0 || !strings.Contains(stdout, "restored "+out) {
		t.Fatalf("restore -config: exit %d\n%s%s", code, stdout, stderr)
	}
	if got, want := sha3sum(t, out), sha3sum(t, path); got != want {
		t.Fatal("restore by database path differs from the source")
	}
	// Never over an existing file; -if-db-not-exists makes that a no-op.
	if code, _, stderr := runCLI(t, "restore", "-o", out, url); code != 1 || !strings.Contains(stderr, "never overwrites") {
		t.Fatalf("restore over an existing file: exit %d: %s", code, stderr)
	}
	if code, _, _ := runCLI(t, "restore", "-if-db-not-exists", "-o", out, url); code != 0 {
		t.Fatalf("restore -if-db-not-exists over an existing file: exit %d", code)
	}
	empty := "file://" + t.TempDir()
	if code, _, _ := runCLI(t, "restore", "-o", filepath.Join(t.TempDir(), "x.db"), empty); code != 1 {
		t.Fatalf("restore from an empty replica: exit %d, want 1", code)
	}
	if code, _, _ := runCLI(t, "restore", "-if-replica-exists", "-o", filepath.Join(t.TempDir(), "x.db"), empty); code != 0 {
		t.Fatalf("restore -if-replica-exists from an empty replica: exit %d, want 0", code)
	}
	// Every check level restores a sound database.
	for _, level := range []string{"-integrity-check=full", "-integrity-check=quick", "-integrity-check=none", "-no-integrity-check"} {
		o := filepath.Join(t.TempDir(), "out.db")
		if code, stdout, stderr := runCLI(t, "restore", level, "-o", o, url); code != 0 || sha3sum(t, o) != sha3sum(t, path) {
			t.Fatalf("restore %s: exit %d\n%s%s", level, code, stdout, stderr)
		}
	}
	if code, _, _ := runCLI(t, "restore", url); code != 2 {
		t.Fatalf("restore without -o: exit %d, want 2", code)
	}

	code, stdout, stderr := runCLI(t, "generations", "-json", url)
	var gens []generationRow
	if code != 0 || json.Unmarshal([]byte(stdout), &gens) != nil || len(gens) != 1 || gens[0].Snapshots != 1 || gens[0].LastTxID < 5 {
		t.Fatalf("generations -json: exit %d, %+v\n%s%s", code, gens, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "segments", "-config", cfg, path)
	if code != 0 || !strings.Contains(stdout, "GENERATION") || !strings.Contains(stdout, gens[0].Generation) {
		t.Fatalf("segments: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "snapshots", url)
	if code != 0 || strings.Count(stdout, gens[0].Generation) != 1 {
		t.Fatalf("snapshots: exit %d\n%s", code, stdout)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"nosuchcommand"},
		{"replicate"},
		{"replicate", "-bogus-flag"},
		{"restore", "-o", "x.db"},
		{"replicate", "db", "gopher://x"},
		{"restore", "-o", "x.db", "-integrity-check", "yes", "file:///nonexistent"},
		{"restore", "-o", "x.db", "-integrity-check", "quick", "-no-integrity-check", "file:///nonexistent"},
		{"restore", "-o", "x.db", "-integrity-check", "full", "-no-integrity-check", "file:///nonexistent"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 || stderr == "" {
			t.Errorf("replicator %v: exit %d (%q), want 2 with a message", args, code, stderr)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"dbs:\n  - path: /x.db\n    replicas:\n      - type: file\n        path: /r\n    bogus: 1\n", "bogus"},
		{"dbs:\n  - path: /x.db\n    sync-interval: soon\n    replicas:\n      - type: file\n", "sync-interval"},
		{"dbs:\n  - path: /x.db\n    replicas:\n      - type: ftp\n", "unknown replica type"},
		{"dbs:\n  - path: /x.db\n", "no replicas"},
	} {
		f := filepath.Join(dir, "c.yml")
		if err := os.WriteFile(f, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCLI(t, "replicate", "-config", f)
		if code != 1 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "line") && !strings.Contains(stderr, "c.yml") {
			t.Errorf("config %q: exit %d, stderr %q; want an error naming %q and where", tc.yaml, code, stderr, tc.want)
		}
	}
}

// TestReplicateCompression: what the daemon uploads is compressed with lz4
// unless -compression (or compression: in a config) says otherwise, every
// choice restores, and an unknown one is a usage error.
func TestReplicateCompression(t *testing.T) {
	bin := replicatorBin(t)
	for _, tc := range []struct {
		args []string
		want segment.Compression
	}{
		{nil, segment.CompressionLZ4},
		{[]string{"-compression", "zstd"}, segment.CompressionZstd},
		{[]string{"-compression", "none"}, segment.CompressionNone},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			dir := t.TempDir()
			app := newAppDB(t, filepath.Join(dir, "app.db"))
			app.insert(50)
			url := "file://" + filepath.Join(dir, "replica")
			addr := loopbackAddr(t)
			d := startDaemonProc(t, bin, addr, append(append([]string{"-addr", addr}, tc.args...), app.path, url)...)
			d.waitSynced(app.path)
			app.insert(10)
			d.waitSynced(app.path)
			d.stop()
			var n int
			err := filepath.WalkDir(filepath.Join(dir, "replica", "generations"), func(p string, de os.DirEntry, err error) error {
				if err != nil || de.IsDir() {
					return err
				}
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				h, err := segment.ReadHeader(f)
				if err != nil || h.Compression != tc.want {
					t.Errorf("%s: compression %v (%v), want %v", de.Name(), h.Compression, err, tc.want)
				}
				n++
				return nil
			})
			if err != nil || n < 2 {
				t.Fatalf("%d replica objects: %v", n, err)
			}
			if got := restoreRows(t, bin, url, 0); got != 60 {
				t.Fatalf("restored %d rows, want 60", got)
			}
		})
	}
	if code, _, stderr := runCLI(t, "replicate", "-compression", "gzip", "db", "file:///x"); code != 2 || !strings.Contains(stderr, "lz4 (the default), zstd or none") {
		t.Fatalf("replicate -compression gzip: exit %d: %s", code, stderr)
	}
}
