package replicate_test

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// TestSymlinkRetargeted replicates a database named through a symbolic
// link, as deployments that switch a "current" link do. Commits are
// captured from the WAL beside the real file; when the link moves to
// another database, that one starts a new generation and its commits are
// noticed at once, without a Sync, because its WAL is watched now.
func TestSymlinkRetargeted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	link := filepath.Join(dir, "current.db")
	var apps []*appAt
	for _, name := range []string{"a", "b"} {
		p := filepath.Join(dir, name, "app.db")
		if err := os.Mkdir(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		apps = append(apps, &appAt{path: p, db: openApp(t, p, 4096)})
	}
	pointTo := func(target string) {
		tmp := link + ".tmp"
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	pointTo(apps[0].path)
	apps[0].insert(t, 3)

	r := replica.New("mem", memstore.New(), slog.Default())
	d, err := replicate.Open(ctx, replicate.Config{Path: link, Replicas: []*replica.Replica{r}, SyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(d)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()

	// Commits to the linked database are captured as they come.
	start := d.Captured().TxID
	apps[0].insert(t, 4)
	waitCaptured(t, d, start+4)

	pointTo(apps[1].path)
	apps[1].insert(t, 2)
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	gen := d.Captured().Generation
	start = d.Captured().TxID
	apps[1].insert(t, 5)
	waitCaptured(t, d, start+5)
	if g := d.Captured().Generation; g != gen {
		t.Fatalf("generation changed again, to %s", g)
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "restored.db")
	if _, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	if got, want := sha3(t, out), sha3(t, apps[1].path); got != want {
		t.Fatal("the restore differs from the database the link points to")
	}
}

type appAt struct {
	path string
	db   *sql.DB
}

func (a *appAt) insert(t *testing.T, n int) {
	t.Helper()
	for range n {
		if _, err := a.db.Exec("INSERT INTO t (v) VALUES ('row')"); err != nil {
			t.Fatal(err)
		}
	}
}

// waitCaptured waits, without asking for a sync, until d has captured
// txid: only a noticed change of the WAL makes it capture.
func waitCaptured(t *testing.T, d *replicate.DB, txid uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for d.Captured().TxID < txid {
		if time.Now().After(deadline) {
			t.Fatalf("captured txid %d after 5s, want %d: the commits went unnoticed", d.Captured().TxID, txid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
