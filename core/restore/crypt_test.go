package restore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

const marker = "RESTORE-PLAINTEXT-MARKER-0xC0FFEE"

// TestEncryptedReplica replicates one database to an encrypted and a
// plaintext replica. The encrypted one holds no byte of the marker the
// database holds (the plaintext one does, which shows the check can
// fail); it restores exactly with its key, and without the key or with
// another one the restore fails, saying which key it needs, and leaves
// nothing at the output path.
func TestEncryptedReplica(t *testing.T) {
	ctx := context.Background()
	key, _ := crypt.GenerateKey()
	other, _ := crypt.GenerateKey()
	ring := func(keys ...*crypt.Key) *crypt.Keyring {
		if len(keys) == 0 {
			return nil
		}
		kr, err := crypt.NewKeyring(keys...)
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
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
	encSt, plainSt := memstore.New(), memstore.New()
	enc := replica.New("encrypted", encSt, nil)
	enc.Keys = ring(key)
	plain := replica.New("plain", plainSt, nil)
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{enc, plain},
		SyncInterval: time.Millisecond, SnapshotInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	for i := range 30 {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", strings.Repeat(marker, 1+i%3)); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := d.Captured()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if n := objectsWith(t, plainSt, marker); n == 0 {
		t.Fatal("the plaintext replica does not hold the marker: the check below proves nothing")
	}
	if n := objectsWith(t, encSt, marker); n != 0 {
		t.Fatalf("%d objects of the encrypted replica hold plaintext", n)
	}

	tests := []struct {
		name    string
		keys    *crypt.Keyring
		want    error
		message string
	}{
		{"key", ring(key), nil, ""},
		{"rotated keyring", ring(other, key), nil, ""},
		{"no key", nil, crypt.ErrKeyRequired, "encrypted with key " + key.ID().String()},
		{"wrong key", ring(other), crypt.ErrWrongKey, "encrypted with key " + key.ID().String() + ", you gave key " + other.ID().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replica.New("encrypted", encSt, nil)
			r.Keys = tt.keys
			outDir := t.TempDir()
			out := filepath.Join(outDir, "out.db")
			res, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{})
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if res.Generation != want.Generation || res.TxID != want.TxID || uint64(res.Checksum) != want.Checksum {
					t.Fatalf("restored %+v, captured %+v", res, want)
				}
				if got := rows(t, out); got != 30 {
					t.Fatalf("%d rows, want 30", got)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("restore: %v, want %v saying %q", err, tt.want, tt.message)
			}
			if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
				t.Fatalf("a failed restore left %d files beside the output (%s)", len(ents), ents[0].Name())
			}
		})
	}
}

// objectsWith counts the objects in st that contain s.
func objectsWith(t *testing.T, st sdk.Storage, s string) int {
	t.Helper()
	n := 0
	err := st.List(context.Background(), "", "", func(oi sdk.ObjectInfo) error {
		if bytes.Contains(get(t, st, oi.Key), []byte(s)) {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
