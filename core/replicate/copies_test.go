package replicate_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// wholeGets counts the GETs of whole objects (downloads; header reads are
// ranged) that reach a store.
type wholeGets struct {
	sdk.Storage
	n atomic.Int64
}

func (w *wholeGets) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off == 0 && n < 0 {
		w.n.Add(1)
	}
	return w.Storage.Get(ctx, key, off, n)
}

// TestCompactionReadsLocalCopies: the daemon keeps what it uploads for
// compaction, so its maintenance passes merge level 0 into 1 and 1 into 2
// without downloading anything, and the replica still restores the
// database; with encryption too (the copies of level-0 objects are the
// plaintext the upload sealed).
func TestCompactionReadsLocalCopies(t *testing.T) {
	key, err := crypt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypt.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keys *crypt.Keyring
	}{
		{"plaintext", nil},
		{"encrypted", keys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compactFromCopies(t, tc.keys)
		})
	}
}

func compactFromCopies(t *testing.T, keys *crypt.Keyring) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, 4096)
	st := &wholeGets{Storage: memstore.New()}
	r := replica.New("mem", st, quiet)
	d, err := replicate.Open(ctx, replicate.Config{
		Path: path, Replicas: []*replica.Replica{r}, SyncInterval: time.Millisecond, Logger: quiet, Keys: keys,
		CompactionInterval: 5 * time.Millisecond, MaintenanceInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	levels := func() map[int]int {
		gens, err := r.Generations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := map[int]int{}
		for _, g := range gens {
			objs, err := r.Objects(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				n[o.Level]++
			}
		}
		return n
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; levels()[2] == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no level-2 segment after 20s; levels %v", levels())
		}
		if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", "row"); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := st.n.Load(); n != 0 {
		t.Errorf("maintenance downloaded %d objects; want every input read from its local copy", n)
	}
	out := filepath.Join(t.TempDir(), "out.db")
	if _, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	if got, want := sha3(t, out), sha3(t, path); got != want {
		t.Fatal("restored database differs from the source")
	}
}
