package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
)

func verifyConfig(t *testing.T, dbPath, repDir string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "replicator.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("dbs:\n  - path: %s\n    replicas:\n      - type: file\n        path: %s\n", dbPath, repDir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestVerifyConsistent(t *testing.T) {
	path, repDir := replicated(t, 5)
	cfg := verifyConfig(t, path, repDir)
	code, stdout, stderr := runCLI(t, "verify", "-config", cfg, path)
	if code != 0 || !strings.Contains(stdout, "equals the database") {
		t.Fatalf("verify -config: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "verify", "file://"+repDir)
	if code != 0 || !strings.Contains(stdout, "restores consistently") || strings.Contains(stdout, "equals the database") {
		t.Fatalf("verify URL: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, _ := runCLI(t, "verify", path); code != exitUsage {
		t.Fatalf("verify DB_PATH without -config: exit %d, want %d", code, exitUsage)
	}
	if code, _, stderr := runCLI(t, "verify", "-h"); code != 0 || !strings.Contains(stderr, "Exit codes") {
		t.Fatalf("verify -h: exit %d\n%s", code, stderr)
	}
}

// TestVerifyTampered flips a byte in the middle of every object of the
// replica: the restore must fail its verification, exit 3.
func TestVerifyTampered(t *testing.T) {
	path, repDir := replicated(t, 5)
	n := 0
	err := filepath.WalkDir(filepath.Join(repDir, "generations"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)-len(b)/3] ^= 0x40
		n++
		return os.WriteFile(p, b, 0o644)
	})
	if err != nil || n == 0 {
		t.Fatalf("tamper with %s: %d objects, %v", repDir, n, err)
	}
	cfg := verifyConfig(t, path, repDir)
	for _, args := range [][]string{{"verify", "-config", cfg, path}, {"verify", "file://" + repDir}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != exitReplicaInconsistent || !strings.Contains(stderr, "inconsistent") {
			t.Fatalf("%v on a tampered replica: exit %d, want %d\n%s%s", args, code, exitReplicaInconsistent, stdout, stderr)
		}
		t.Logf("%v: %s", args, stderr[strings.LastIndex(stderr, "replicator verify:"):])
	}
}

// TestVerifyDiffers keeps the replica and changes the checksum the daemon
// recorded for the same txid: exit 4.
func TestVerifyDiffers(t *testing.T) {
	path, repDir := replicated(t, 3)
	posPath := filepath.Join(localstate.DefaultPath(path), "position.json")
	b, err := os.ReadFile(posPath)
	if err != nil {
		t.Fatal(err)
	}
	var pos localstate.Position
	if err := json.Unmarshal(b, &pos); err != nil {
		t.Fatal(err)
	}
	pos.Checksum ^= 1
	if b, err = json.Marshal(pos); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(posPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "verify", "-config", verifyConfig(t, path, repDir), path)
	want := fmt.Sprintf("replica differs from the database at txid %d", pos.TxID)
	if code != exitReplicaDiffers || !strings.Contains(stderr, want) {
		t.Fatalf("verify against a different checksum: exit %d, want %d and %q\n%s%s", code, exitReplicaDiffers, want, stdout, stderr)
	}
}

// TestVerifyBehind replicates to replica A, then replicates more
// transactions to replica B only (A left out of the configuration): A is
// behind the database's position.
func TestVerifyBehind(t *testing.T) {
	path, repA := replicated(t, 3)
	repB := filepath.Join(t.TempDir(), "replicaB")
	ctx := context.Background()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, log: newTestLogger(t)}
	r, closeFn, err := openReplica(ctx, e, config.ReplicaConfig{Name: "b", Type: "file", Settings: map[string]string{"path": repB}})
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
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	for i := range 2 {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint("b", i)); err != nil {
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

	cfg := verifyConfig(t, path, repA)
	code, stdout, stderr := runCLI(t, "verify", "-config", cfg, path)
	if code != exitReplicaBehind || !strings.Contains(stderr, "replica is behind") {
		t.Fatalf("verify a lagging replica: exit %d, want %d\n%s%s", code, exitReplicaBehind, stdout, stderr)
	}
	if code, stdout, stderr := runCLI(t, "verify", "-allow-behind", "-config", cfg, path); code != 0 || !strings.Contains(stdout, "behind") {
		t.Fatalf("verify -allow-behind a lagging replica: exit %d\n%s%s", code, stdout, stderr)
	}
	// Replica B holds everything.
	if code, stdout, stderr := runCLI(t, "verify", "-config", verifyConfig(t, path, repB), path); code != 0 {
		t.Fatalf("verify the up-to-date replica: exit %d\n%s%s", code, stdout, stderr)
	}
}
