package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/retention"
	"github.com/sqlitereplicator/replicator/internal/testenv"
)

const cliMarker = "CLI-PLAINTEXT-MARKER-5f3a"

// replicatedEncrypted replicates n rows holding cliMarker to a file replica
// with the keys of keyFile, as the daemon does with `encryption: {key-file:
// ...}`, and returns the database path and the replica directory.
func replicatedEncrypted(t *testing.T, keyFile string, n int) (string, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	repDir := filepath.Join(dir, "replica")
	keys, err := crypt.LoadKey(keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
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
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, Keys: keys,
		SyncInterval: time.Millisecond, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	for range n {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", cliMarker); err != nil {
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

// TestCLIEncryption goes through the commands a user runs: keygen, then
// (with a daemon replicating under that key to a directory) restore,
// verify and the listings with -key-file and -key-env, and without the
// key or with another one.
func TestCLIEncryption(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "app.key")
	code, stdout, stderr := runCLI(t, "keygen", "-o", keyFile)
	if code != 0 || !strings.Contains(stdout, "wrote key") {
		t.Fatalf("keygen -o: exit %d\n%s%s", code, stdout, stderr)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	if code, _, stderr := runCLI(t, "keygen", "-o", keyFile); code != 1 || !strings.Contains(stderr, "never overwrites") {
		t.Fatalf("keygen over an existing file: exit %d: %s", code, stderr)
	}
	keys, err := crypt.LoadKey(keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	id := keys.Primary().ID().String()
	code, otherKey, _ := runCLI(t, "keygen")
	if code != 0 {
		t.Fatalf("keygen: exit %d", code)
	}
	otherFile := filepath.Join(dir, "other.key")
	if err := os.WriteFile(otherFile, []byte(otherKey), 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := crypt.ParseKey(otherKey)
	if err != nil {
		t.Fatalf("keygen printed %q: %v", otherKey, err)
	}

	path, repDir := replicatedEncrypted(t, keyFile, 8)
	url := "file://" + repDir
	err = filepath.WalkDir(repDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(cliMarker)) {
			t.Errorf("%s holds plaintext", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	restoreTo := func(args ...string) (string, int, string, string) {
		out := filepath.Join(t.TempDir(), "out.db")
		code, stdout, stderr := runCLI(t, append(append([]string{"restore", "-o", out}, args...), url)...)
		return out, code, stdout, stderr
	}
	out, code, stdout, stderr := restoreTo("-key-file", keyFile)
	if code != 0 || sha3sum(t, out) != sha3sum(t, path) {
		t.Fatalf("restore -key-file: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Setenv("TEST_REPLICATOR_KEY", otherKey+","+strings.TrimSpace(readFile(t, keyFile)))
	if out, code, _, stderr := restoreTo("-key-env", "TEST_REPLICATOR_KEY"); code != 0 || sha3sum(t, out) != sha3sum(t, path) {
		t.Fatalf("restore -key-env with two keys: exit %d\n%s", code, stderr)
	}
	for _, tt := range []struct {
		name string
		args []string
		say  []string
	}{
		{"no key", nil, []string{"encrypted with key " + id, "-key-file FILE or -key-env VAR"}},
		{"wrong key", []string{"-key-file", otherFile}, []string{"encrypted with key " + id + ", you gave key " + other.ID().String()}},
	} {
		out, code, _, stderr := restoreTo(tt.args...)
		t.Logf("restore, %s:\n%s", tt.name, stderr)
		for _, s := range tt.say {
			if code != 1 || !strings.Contains(stderr, s) {
				t.Fatalf("restore, %s: exit %d, want 1 saying %q:\n%s", tt.name, code, s, stderr)
			}
		}
		if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
			t.Fatalf("restore, %s: left %s", tt.name, ents[0].Name())
		}
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, code, _, stderr := restoreTo("-key-file", bad); code != 1 || !strings.Contains(stderr, "key file "+bad+" line 1") {
		t.Fatalf("restore with a bad key file: exit %d: %s", code, stderr)
	}

	if code, stdout, stderr := runCLI(t, "verify", "-key-file", keyFile, url); code != 0 {
		t.Fatalf("verify -key-file: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := runCLI(t, "verify", url); code != 1 || !strings.Contains(stderr, "-key-file") {
		t.Fatalf("verify without the key: exit %d (want 1, not 'inconsistent'): %s", code, stderr)
	}
	// Listings read headers only: no key needed, and they name the key.
	if code, stdout, _ := runCLI(t, "snapshots", url); code != 0 || !strings.Contains(stdout, id) {
		t.Fatalf("snapshots: exit %d\n%s", code, stdout)
	}
	if code, stdout, _ := runCLI(t, "segments", "-key-ids", url); code != 0 || !strings.Contains(stdout, "KEY") || !strings.Contains(stdout, id) {
		t.Fatalf("segments -key-ids: exit %d\n%s", code, stdout)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEncryptedEachBackend replicates with a key to every backend whose
// test server runs, compacts, and restores: the storage holds no
// plaintext, the restore with the key equals the source, and one without
// it fails naming the key.
func TestEncryptedEachBackend(t *testing.T) {
	e := &env{stdout: os.Stdout, stderr: os.Stderr, log: newTestLogger(t)}
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypt.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
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
			if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
				t.Fatal(err)
			}
			r, closeFn, err := openReplica(ctx, e, rc)
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, Keys: keys,
				SyncInterval: time.Millisecond, CompactionInterval: -1, Logger: e.log})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- d.Run(runCtx) }()
			for i := range 12 {
				if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", strings.Repeat(cliMarker, 1+i)); err != nil {
					t.Fatal(err)
				}
				if err := d.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			gen := d.Captured().Generation
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			rep, err := retention.Compact(ctx, r, gen, 0, retention.CompactOptions{MinRun: 2, TempDir: t.TempDir()})
			if err != nil || len(rep.Merged) == 0 {
				t.Fatalf("compaction: %+v, %v", rep, err)
			}
			objs, err := r.Objects(ctx, gen)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				rc, err := r.Storage().Get(ctx, o.Key, 0, -1)
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(body, []byte(cliMarker)) {
					t.Fatalf("%s holds plaintext", o.Key)
				}
			}
			out := filepath.Join(dir, "restored.db")
			if _, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{Logger: e.log}); err != nil {
				t.Fatal(err)
			}
			if got, want := sha3sum(t, out), sha3sum(t, path); got != want {
				t.Fatal("restore differs from the source")
			}
			r.Keys = nil
			_, err = restore.Run(ctx, r, restore.Target{}, filepath.Join(dir, "nokey.db"), restore.Options{Logger: e.log})
			if !errors.Is(err, crypt.ErrKeyRequired) || !strings.Contains(err.Error(), key.ID().String()) {
				t.Fatalf("restore without the key: %v", err)
			}
		})
	}
}
