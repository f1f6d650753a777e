package replica_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// countingStore counts the requests that reach the store.
type countingStore struct {
	sdk.Storage
	n atomic.Int64
}

func (s *countingStore) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	s.n.Add(1)
	return s.Storage.Put(ctx, key, r, opts)
}

func (s *countingStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	s.n.Add(1)
	return s.Storage.Get(ctx, key, off, n)
}

func (s *countingStore) Stat(ctx context.Context, key string) (sdk.ObjectInfo, error) {
	s.n.Add(1)
	return s.Storage.Stat(ctx, key)
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	const ttl = 90 * time.Millisecond
	for _, tc := range []struct {
		name string
		// between runs after the first daemon took the lease, before it
		// renews; it returns what the renewal must say.
		between func(t *testing.T, st sdk.Storage) string
		// requests is how many the renewal may make.
		requests int64
	}{
		{"renewal is one conditional write", func(*testing.T, sdk.Storage) string { return "" }, 1},
		{"taken over meanwhile", func(t *testing.T, st sdk.Storage) string {
			// The lease expired and another daemon took it.
			time.Sleep(ttl)
			other := replica.New("r", st, nil).NewLease("other-host:/db", time.Hour)
			if err := other.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			return "taken over by other-host:/db"
		}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &countingStore{Storage: memstore.New(memstore.WithCapabilities(sdk.Capabilities{IfAbsent: true, IfMatch: true}))}
			l := replica.New("r", st, nil).NewLease("this-host:/db", ttl)
			if err := l.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			first := l.Epoch()
			want := tc.between(t, st.Storage)
			time.Sleep(ttl/3 + 10*time.Millisecond)
			before := st.n.Load()
			err := l.Ensure(ctx)
			if got := st.n.Load() - before; got > tc.requests {
				t.Errorf("the renewal made %d requests, want at most %d", got, tc.requests)
			}
			if want == "" {
				if err != nil || l.Epoch() != first+1 {
					t.Fatalf("renewal: %v, epoch %d after %d", err, l.Epoch(), first)
				}
				return
			}
			if !errors.Is(err, replica.ErrLeaseHeld) || !strings.Contains(err.Error(), want) {
				t.Fatalf("renewal = %v, want ErrLeaseHeld saying %q", err, want)
			}
		})
	}
}
