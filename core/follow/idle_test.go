package follow

import (
	"context"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// countingStore counts the requests the follower makes.
type countingStore struct {
	*memstore.Store
	lists, gets, keys atomic.Int64
}

func (s *countingStore) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	s.lists.Add(1)
	return s.Store.List(ctx, prefix, startAfter, func(oi sdk.ObjectInfo) error {
		s.keys.Add(1)
		return fn(oi)
	})
}

func (s *countingStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, key, offset, length)
}

// An idle primary costs one LIST per poll, returning only the generation's
// snapshot, and no GET.
func TestFollowIdleCost(t *testing.T) {
	dir := t.TempDir()
	st := &countingStore{Store: memstore.New()}
	r := replica.New("mem", st, testLogger(t))
	p := startPrimary(t, filepath.Join(dir, "primary.db"), r, 5, false)
	defer p.close()
	workload(p, 5, 300*time.Millisecond)
	p.sync()
	// The follower reads through its own view of the same store.
	fr := replica.New("mem", st, testLogger(t))
	out := filepath.Join(dir, "follower.db")
	f := startFollower(t, fr, out)
	defer f.close(t)
	converge(t, p, f, out)
	time.Sleep(50 * time.Millisecond)
	polls0, lists0, gets0, keys0 := f.Stats().Polls, st.lists.Load(), st.gets.Load(), st.keys.Load()
	time.Sleep(500 * time.Millisecond)
	polls, lists, gets, keys := f.Stats().Polls-polls0, st.lists.Load()-lists0, st.gets.Load()-gets0, st.keys.Load()-keys0
	t.Logf("idle for 500ms: %d polls, %d LISTs (all of the store's clients), %d GETs, %d keys listed", polls, lists, gets, keys)
	if polls < 5 {
		t.Fatalf("only %d polls in 500ms at a 10ms interval", polls)
	}
	// The primary's own daemon makes no request while idle (see
	// core/replicate), so every LIST is the follower's.
	if lists != int64(polls) && lists != int64(polls)+1 && lists != int64(polls)-1 {
		t.Errorf("%d LISTs for %d polls, want one per poll", lists, polls)
	}
	if gets != 0 {
		t.Errorf("%d GETs while idle, want 0", gets)
	}
	if keys > lists {
		t.Errorf("%d keys listed in %d LISTs: want at most the one snapshot per LIST", keys, lists)
	}
}

// A segment that does not start from the follower's checksum makes it
// re-sync instead of applying it (here the follower's idea of its state
// is damaged on purpose).
func TestFollowMismatchResyncs(t *testing.T) {
	dir, r := setup(t)
	p := startPrimary(t, filepath.Join(dir, "primary.db"), r, 5, false)
	defer p.close()
	out := filepath.Join(dir, "follower.db")
	ctx := context.Background()
	f := New(Config{Replica: r, Path: out, Interval: 10 * time.Millisecond, Logger: testLogger(t)})
	if err := f.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.close()
	workload(p, 5, 200*time.Millisecond)
	p.sync()
	pos := f.Position()
	pos.Checksum ^= 1
	f.setPosition(pos)
	if err := f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	st := f.Stats()
	want := p.d.Captured()
	if st.Resyncs != 1 || st.Segments != 0 || st.Position.TxID != want.TxID || uint64(st.Position.Checksum) != want.Checksum {
		t.Fatalf("after a mismatch: %+v, want one re-sync to txid %d", st, want.TxID)
	}
	if got, want := fileChecksum(t, out), fileChecksum(t, p.path); got != want {
		t.Fatalf("follower's file has checksum %s, the primary's %s", got, want)
	}
}
