package storecount_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
	"github.com/sqlitereplicator/replicator/sdk/storecount"
)

func TestCounts(t *testing.T) {
	ctx := context.Background()
	put := func(t *testing.T, st sdk.Storage, key string) {
		t.Helper()
		if _, err := st.Put(ctx, key, strings.NewReader("v-"+key), sdk.PutOptions{}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	for _, tc := range []struct {
		name string
		// run makes requests through st; seed is the unwrapped store,
		// for setup that must not be counted.
		run  func(t *testing.T, st, seed sdk.Storage)
		want storecount.Counts
	}{
		{"nothing sent", func(*testing.T, sdk.Storage, sdk.Storage) {}, storecount.Counts{}},
		{"puts", func(t *testing.T, st, _ sdk.Storage) {
			put(t, st, "a")
			put(t, st, "b")
		}, storecount.Counts{storecount.Put: 2}},
		{"a get reads what the wrapped store holds", func(t *testing.T, st, seed sdk.Storage) {
			put(t, seed, "a")
			rc, err := st.Get(ctx, "a", 2, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if b, err := io.ReadAll(rc); err != nil || string(b) != "a" {
				t.Fatalf("get = %q, %v; want %q", b, err, "a")
			}
		}, storecount.Counts{storecount.Get: 1}},
		{"failed requests count", func(t *testing.T, st, _ sdk.Storage) {
			if _, err := st.Get(ctx, "missing", 0, -1); !errors.Is(err, sdk.ErrNotFound) {
				t.Fatalf("get of a missing key = %v, want NotFound", err)
			}
			if _, err := st.Stat(ctx, "missing"); !errors.Is(err, sdk.ErrNotFound) {
				t.Fatalf("stat of a missing key = %v, want NotFound", err)
			}
		}, storecount.Counts{storecount.Get: 1, storecount.Stat: 1}},
		{"a list is one request whatever it yields", func(t *testing.T, st, seed sdk.Storage) {
			for _, k := range []string{"a", "b", "c"} {
				put(t, seed, k)
			}
			var n int
			if err := st.List(ctx, "", "", func(sdk.ObjectInfo) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n != 3 {
				t.Fatalf("listed %d objects, want 3", n)
			}
		}, storecount.Counts{storecount.List: 1}},
		{"a delete is one request whatever it names", func(t *testing.T, st, seed sdk.Storage) {
			put(t, seed, "a")
			put(t, seed, "b")
			if err := st.Delete(ctx, "a", "b", "missing"); err != nil {
				t.Fatal(err)
			}
			if _, err := seed.Stat(ctx, "a"); !errors.Is(err, sdk.ErrNotFound) {
				t.Fatalf("stat after delete = %v, want NotFound", err)
			}
		}, storecount.Counts{storecount.Delete: 1}},
		{"capabilities and close are not requests", func(t *testing.T, st, _ sdk.Storage) {
			st.Capabilities()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}, storecount.Counts{}},
		{"concurrent requests of every kind", func(t *testing.T, st, _ sdk.Storage) {
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 25 {
						_, _ = st.Put(ctx, "k", strings.NewReader("v"), sdk.PutOptions{})
						if rc, err := st.Get(ctx, "k", 0, -1); err == nil {
							rc.Close()
						}
						_, _ = st.Stat(ctx, "k")
						_ = st.List(ctx, "", "", func(sdk.ObjectInfo) error { return nil })
						_ = st.Delete(ctx, "k")
					}
				})
			}
			wg.Wait()
		}, storecount.Counts{storecount.Put: 200, storecount.Get: 200, storecount.Stat: 200, storecount.List: 200, storecount.Delete: 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := memstore.New()
			st := storecount.New(seed)
			tc.run(t, st, seed)
			want := storecount.Counts{storecount.Put: 0, storecount.Get: 0, storecount.Stat: 0, storecount.List: 0, storecount.Delete: 0}
			maps.Copy(want, tc.want)
			if got := st.Counts(); !maps.Equal(got, want) {
				t.Errorf("Counts() = %v, want %v", got, want)
			}
			var total int64
			for _, n := range want {
				total += n
			}
			if got := st.Total(); got != total {
				t.Errorf("Total() = %d, want %d", got, total)
			}
		})
	}
}

func TestCountsArithmetic(t *testing.T) {
	for _, tc := range []struct {
		name           string
		later, earlier storecount.Counts
		want           storecount.Counts
		total          int64
	}{
		{"empty", storecount.Counts{}, storecount.Counts{}, storecount.Counts{}, 0},
		{"from nothing", storecount.Counts{"put": 3, "get": 1}, nil, storecount.Counts{"put": 3, "get": 1}, 4},
		{"a window", storecount.Counts{"put": 7, "get": 5, "stat": 2}, storecount.Counts{"put": 3, "get": 5, "stat": 1},
			storecount.Counts{"put": 4, "get": 0, "stat": 1}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.later.Sub(tc.earlier)
			if !maps.Equal(got, tc.want) {
				t.Errorf("Sub = %v, want %v", got, tc.want)
			}
			if n := got.Total(); n != tc.total {
				t.Errorf("Total = %d, want %d", n, tc.total)
			}
		})
	}
}
