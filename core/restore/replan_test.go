package restore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/retention"
	"github.com/sqlitereplicator/replicator/sdk"
)

// interferingStore runs meddle once, just before the first Get of a
// level-0 segment: the moment a daemon's maintenance may change a replica
// under a restore that has already listed it.
type interferingStore struct {
	sdk.Storage
	once   sync.Once
	meddle func(key string)
}

func (s *interferingStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if strings.Contains(key, "/segments/0/") {
		s.once.Do(func() { s.meddle(key) })
	}
	return s.Storage.Get(ctx, key, offset, length)
}

// TestReplicaChangesUnderRestore: compaction that replaces planned objects
// after the restore listed them makes the restore plan again and succeed;
// an object that is simply gone fails it clearly, leaving no file.
func TestReplicaChangesUnderRestore(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		meddle  func(t *testing.T, r *replica.Replica, st sdk.Storage, key string)
		wantErr bool
	}{
		{
			name: "compacted",
			meddle: func(t *testing.T, r *replica.Replica, _ sdk.Storage, _ string) {
				gens, err := r.Generations(ctx)
				if err != nil || len(gens) != 1 {
					t.Errorf("generations: %v %v", gens, err)
					return
				}
				rep, err := retention.Compact(ctx, r, gens[0], 0, retention.CompactOptions{MinRun: 2, TempDir: t.TempDir()})
				if err != nil || len(rep.Deleted) == 0 {
					t.Errorf("compaction under the restore: %+v, %v; want merged and deleted inputs", rep, err)
				}
			},
		},
		{
			name: "lost",
			meddle: func(t *testing.T, _ *replica.Replica, st sdk.Storage, key string) {
				if err := st.Delete(ctx, key); err != nil {
					t.Error(err)
				}
			},
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct, st, _, _ := history(t, 20)
			is := &interferingStore{Storage: st}
			is.meddle = func(key string) { tc.meddle(t, direct, st, key) }
			var log bytes.Buffer
			r := replica.New("mem", is, slog.New(slog.NewTextHandler(io.Discard, nil)))
			out := filepath.Join(t.TempDir(), "out.db")
			res, err := restore.Run(ctx, r, restore.Target{}, out, restore.Options{Parallel: 2, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if tc.wantErr {
				if err == nil {
					t.Fatalf("restore succeeded (txid %d) although a segment was lost", res.TxID)
				}
				if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
					t.Fatalf("a failed restore left %s", out)
				}
				t.Logf("restore with a lost segment: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("restore while compaction replaced its objects: %v\n%s", err, log.String())
			}
			if got := rows(t, out); got != 20 {
				t.Fatalf("restored %d rows, want 20", got)
			}
			if !strings.Contains(log.String(), "planning again") {
				t.Fatalf("the restore did not plan again; log:\n%s", log.String())
			}
		})
	}
}
