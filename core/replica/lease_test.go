package replica_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
	"github.com/sqlitereplicator/replicator/sdk/storecount"
)

func TestLease(t *testing.T) {
	ctx := context.Background()
	const ttl = 120 * time.Millisecond
	for _, tc := range []struct {
		name string
		// between runs after the first daemon took the lease; it returns
		// what the next Ensure must say ("" for success).
		between func(t *testing.T, st sdk.Storage) string
		// wait is how long after taking the lease the next Ensure runs.
		wait time.Duration
		// requests is how many that Ensure may make, and renewed whether
		// it must have raised the epoch.
		requests int64
		renewed  bool
	}{
		{"before half the TTL nothing is sent", nil, ttl / 4, 0, false},
		{"after half the TTL one conditional write renews", nil, ttl/2 + 10*time.Millisecond, 1, true},
		{"a second owner is refused while the lease is live", func(t *testing.T, st sdk.Storage) string {
			other := replica.New("r", st, nil).NewLease("other-host:/db", time.Hour)
			err := other.Ensure(ctx)
			if !errors.Is(err, replica.ErrLeaseHeld) || !strings.Contains(err.Error(), "this-host:/db holds the lease") {
				t.Fatalf("second owner's Ensure = %v, want ErrLeaseHeld naming this-host:/db", err)
			}
			return ""
		}, ttl/2 + 10*time.Millisecond, 1, true},
		{"taken over after it expired", func(t *testing.T, st sdk.Storage) string {
			// The holder stalled past the TTL (a crash looks the same to
			// the other daemon) and another daemon took the lease.
			time.Sleep(ttl + 10*time.Millisecond)
			other := replica.New("r", st, nil).NewLease("other-host:/db", time.Hour)
			if err := other.Ensure(ctx); err != nil {
				t.Fatalf("takeover of an expired lease: %v", err)
			}
			return "taken over by other-host:/db"
		}, 0, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := storecount.New(memstore.New(memstore.WithCapabilities(sdk.Capabilities{IfAbsent: true, IfMatch: true})))
			l := replica.New("r", st, nil).NewLease("this-host:/db", ttl)
			if err := l.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			first := l.Epoch()
			want := ""
			if tc.between != nil {
				want = tc.between(t, st.Storage)
			}
			time.Sleep(tc.wait)
			before := st.Counts()
			err := l.Ensure(ctx)
			// A lease is read (Stat, Get) and written (Put): those are
			// the requests counted.
			d := st.Counts().Sub(before)
			if got := d[storecount.Put] + d[storecount.Get] + d[storecount.Stat]; got > tc.requests {
				t.Errorf("Ensure made %d requests, want at most %d", got, tc.requests)
			}
			if want != "" {
				if !errors.Is(err, replica.ErrLeaseHeld) || !strings.Contains(err.Error(), want) {
					t.Fatalf("renewal = %v, want ErrLeaseHeld saying %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			wantEpoch := first
			if tc.renewed {
				wantEpoch++
			}
			if l.Epoch() != wantEpoch {
				t.Fatalf("epoch %d after %d, want %d", l.Epoch(), first, wantEpoch)
			}
		})
	}
}
