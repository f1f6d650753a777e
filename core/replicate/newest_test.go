package replicate_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/capture"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// TestNewGenerationSortsLast: a replica that holds a generation named for
// a later time than this machine's clock reads (another host's clock
// ahead, or this one booted behind) gets a new generation named to sort
// after it, so a latest restore restores this database and not the other
// generation.
func TestNewGenerationSortsLast(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app := openApp(t, path, 4096)
	if _, err := app.Exec("INSERT INTO t (v) VALUES ('mine')"); err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	ahead := capture.NewGenerationID(time.Now().Add(24 * time.Hour))
	if _, err := st.Put(ctx, "generations/"+ahead+"/snapshots/0000000000000001.snapshot", bytes.NewReader([]byte("not ours")), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r := replica.New("mem", st, slog.Default())
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, SyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if gen := d.Captured().Generation; gen <= ahead {
		t.Fatalf("new generation %s sorts before %s, which the replica held", gen, ahead)
	}
	stop := startRun(d)
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	wantRestoresSource(t, r, path)
}
