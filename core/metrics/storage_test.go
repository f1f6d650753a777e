package metrics_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// healthStore reports a fixed Health, as a plugin store does.
type healthStore struct {
	sdk.Storage
	err error
}

func (h healthStore) Health() error { return h.err }

// TestStorageCounts: each request through the wrapper is counted by
// operation and result, bytes both ways, and the wrapped store's Health
// still shows through.
func TestStorageCounts(t *testing.T) {
	ctx := context.Background()
	reg := metrics.New()
	restarting := errors.New("plugin s3 restarting: attempt 2, next in 100ms")
	st := reg.Storage("/d.db", "s3", healthStore{Storage: memstore.New(), err: restarting})
	steps := []struct {
		name string
		do   func() error
	}{
		{"put", func() error {
			_, err := st.Put(ctx, "a", strings.NewReader("hello"), sdk.PutOptions{})
			return err
		}},
		{"get", func() error {
			rc, err := st.Get(ctx, "a", 0, -1)
			if err != nil {
				return err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if string(b) != "hello" {
				t.Errorf("get: %q", b)
			}
			return err
		}},
		{"stat missing", func() error {
			if _, err := st.Stat(ctx, "missing"); !errors.Is(err, sdk.ErrNotFound) {
				t.Errorf("stat missing: %v", err)
			}
			return nil
		}},
		{"list", func() error { return st.List(ctx, "", "", func(sdk.ObjectInfo) error { return nil }) }},
		{"delete", func() error { return st.Delete(ctx, "a") }},
		{"put refused", func() error {
			_, err := st.Put(ctx, "bad//key", strings.NewReader("x"), sdk.PutOptions{})
			if err == nil {
				t.Error("a put of an invalid key succeeded")
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	got := scrape(t, reg)
	lab := `db="/d.db",replica="s3"`
	for k, v := range map[string]float64{
		`replicator_storage_requests_total{` + lab + `,operation="put",result="ok"}`:         1,
		`replicator_storage_requests_total{` + lab + `,operation="put",result="error"}`:      1,
		`replicator_storage_requests_total{` + lab + `,operation="get",result="ok"}`:         1,
		`replicator_storage_requests_total{` + lab + `,operation="stat",result="not_found"}`: 1,
		`replicator_storage_requests_total{` + lab + `,operation="list",result="ok"}`:        1,
		`replicator_storage_requests_total{` + lab + `,operation="delete",result="ok"}`:      1,
		`replicator_storage_bytes_total{` + lab + `,operation="put"}`:                        5,
		`replicator_storage_bytes_total{` + lab + `,operation="get"}`:                        5,
	} {
		if g, ok := got[norm(k)]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	h, ok := st.(interface{ Health() error })
	if !ok || !errors.Is(h.Health(), restarting) {
		t.Errorf("the wrapper hides the store's Health")
	}
	var nilReg *metrics.Registry
	if plain := memstore.New(); nilReg.Storage("d", "r", plain) != sdk.Storage(plain) {
		t.Error("a nil Registry wrapped the store")
	}
}
