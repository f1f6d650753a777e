package restore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/sqliteuri"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// history replicates n single-row transactions, syncing after each, and
// returns the replica and, per row count k, the txid and time at which the
// table had k rows.
func history(t *testing.T, n int) (*replica.Replica, *memstore.Store, map[int]uint64, map[int]time.Time) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	r, st, d, stop := replicating(t, path)
	txids, times := map[int]uint64{}, map[int]time.Time{}
	for k := 1; k <= n; k++ {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprint(k)); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		txids[k] = d.Captured().TxID
		times[k] = time.Now()
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	return r, st, txids, times
}

// replicating starts a daemon that replicates the database at path to a
// new in-memory replica; stop ends it.
func replicating(t *testing.T, path string) (*replica.Replica, *memstore.Store, *replicate.DB, func()) {
	t.Helper()
	st := memstore.New()
	r := replica.New("mem", st, slog.Default())
	d, err := replicate.Open(context.Background(), replicate.Config{Path: path, Replicas: []*replica.Replica{r}, SyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return r, st, d, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func rows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteuri.For(path, url.Values{"mode": {"ro"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPointInTime(t *testing.T) {
	r, _, txids, times := history(t, 6)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		target restore.Target
		rows   int
	}{
		{"latest", restore.Target{}, 6},
		{"txid of row 3", restore.Target{TxID: txids[3]}, 3},
		{"txid of row 1", restore.Target{TxID: txids[1]}, 1},
		{"timestamp after row 4", restore.Target{Timestamp: times[4]}, 4},
		{"timestamp after row 6", restore.Target{Timestamp: times[6].Add(time.Hour)}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.db")
			res, err := restore.Run(ctx, r, tc.target, out, restore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := rows(t, out); got != tc.rows {
				t.Fatalf("restored %d rows (txid %d), want %d", got, res.TxID, tc.rows)
			}
		})
	}
	t.Run("txid beyond the end", func(t *testing.T) {
		_, err := restore.Run(ctx, r, restore.Target{TxID: txids[6] + 100}, filepath.Join(t.TempDir(), "out.db"), restore.Options{})
		if err == nil || !strings.Contains(err.Error(), "cannot reach") {
			t.Fatalf("restore past the end: %v, want an error saying it cannot reach the txid", err)
		}
	})
	t.Run("timestamp before the first snapshot", func(t *testing.T) {
		_, err := restore.Run(ctx, r, restore.Target{Timestamp: time.Now().Add(-time.Hour)}, filepath.Join(t.TempDir(), "out.db"), restore.Options{})
		if err == nil {
			t.Fatal("restore to a time before any snapshot succeeded")
		}
	})
}

func TestRefusesExistingOutput(t *testing.T) {
	r, _, _, _ := history(t, 1)
	out := filepath.Join(t.TempDir(), "out.db")
	if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := restore.Run(context.Background(), r, restore.Target{}, out, restore.Options{})
	if !errors.Is(err, restore.ErrExists) {
		t.Fatalf("restore over an existing file: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatal("the existing file was changed")
	}
}

// TestOutputNames: an output whose name holds characters that mean
// something in a SQLite URI ('#' once made the integrity check open, and
// create, an empty database cut at the '#', and pass) is restored and
// checked under its own name, and nothing else appears beside it.
func TestOutputNames(t *testing.T) {
	r, _, _, _ := history(t, 2)
	for i, name := range []string{"app#1.db", "x?mode=ro.db", "100%.db", "a b.db"} {
		// Named by number: the test's directory takes the subtest's name.
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, name)
			if _, err := restore.Run(context.Background(), r, restore.Target{}, out, restore.Options{}); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("files beside the output: %q, want only %q", names, name)
			}
			if n := rows(t, out); n != 2 {
				t.Errorf("restored %d rows, want 2", n)
			}
		})
	}
}

func TestNoReplica(t *testing.T) {
	r := replica.New("empty", memstore.New(), slog.Default())
	_, err := restore.Run(context.Background(), r, restore.Target{}, filepath.Join(t.TempDir(), "out.db"), restore.Options{})
	if !errors.Is(err, restore.ErrNoReplica) {
		t.Fatalf("restore from an empty replica: %v, want ErrNoReplica", err)
	}
}

// TestDamagedObjects: a flipped bit or a truncation anywhere in any object
// fails the restore, and nothing appears at the output path.
func TestDamagedObjects(t *testing.T) {
	r, st, _, _ := history(t, 3)
	ctx := context.Background()
	var keys []string
	_ = st.List(ctx, "generations/", "", func(oi sdk.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	})
	if len(keys) < 2 {
		t.Fatalf("replica has %d objects, want a snapshot and segments", len(keys))
	}
	for _, key := range keys {
		for _, damage := range []string{"flip", "truncate", "swap"} {
			t.Run(damage+" "+key, func(t *testing.T) {
				orig := get(t, st, key)
				bad := append([]byte(nil), orig...)
				switch damage {
				case "flip":
					bad[len(bad)/2] ^= 0x10
				case "truncate":
					bad = bad[:len(bad)-20]
				case "swap":
					// Another object's bytes under this name.
					for _, k := range keys {
						if k != key {
							bad = get(t, st, k)
							break
						}
					}
				}
				put(t, st, key, bad)
				defer put(t, st, key, orig)
				out := filepath.Join(t.TempDir(), "out.db")
				_, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{Parallel: 2})
				if err == nil {
					t.Fatal("restore from a damaged replica succeeded")
				}
				if !errors.Is(err, segment.ErrCorrupt) {
					t.Fatalf("error %v does not say the object is corrupt", err)
				}
				if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
					t.Fatal("a failed restore left a file at the output path")
				}
			})
		}
	}
}

func get(t *testing.T, st sdk.Storage, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, st sdk.Storage, key string, b []byte) {
	t.Helper()
	if _, err := st.Put(context.Background(), key, bytes.NewReader(b), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}
