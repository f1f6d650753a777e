package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/conformance/faults"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    faults.Spec
		wantErr string
	}{
		{in: "", want: faults.Spec{}},
		{in: "error=0.2,drop=0.1,latency=50ms,seed=7", want: faults.Spec{Error: 0.2, Drop: 0.1, Latency: 50 * time.Millisecond, Seed: 7, HasSeed: true}},
		{in: " latency=1s , ", want: faults.Spec{Latency: time.Second}},
		{in: "error=1", want: faults.Spec{Error: 1}},
		{in: "error=1.5", wantErr: "bad value for error"},
		{in: "drop=-0.1", wantErr: "bad value for drop"},
		{in: "latency=-5ms", wantErr: "bad value for latency"},
		{in: "latency=fast", wantErr: "bad value for latency"},
		{in: "seed=x", wantErr: "bad value for seed"},
		{in: "error=0.6,drop=0.6", wantErr: "more than 1"},
		{in: "errors=0.1", wantErr: `unknown key "errors"`},
		{in: "error", wantErr: "not KEY=VALUE"},
	} {
		got, err := faults.Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), faults.Env) {
				t.Errorf("Parse(%q) = %+v, %v; want an error naming %s and containing %q", tc.in, got, err, faults.Env, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		// String round-trips.
		if again, err := faults.Parse(got.String()); err != nil || again != got {
			t.Errorf("Parse(String(%+v)) = %+v, %v", got, again, err)
		}
	}
}

// TestLatencyOnlyKeepsContract: with only latency injected, a store still
// passes the whole storage contract.
func TestLatencyOnlyKeepsContract(t *testing.T) {
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(context.Context, *testing.T) (sdk.Storage, error) {
		return faults.Wrap(memstore.New(), faults.Spec{Latency: time.Millisecond, Seed: 1, HasSeed: true}, nil), nil
	}))
}

func TestErrorsAreTransientAndReported(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New()
	var reported atomic.Int64
	st := faults.Wrap(mem, faults.Spec{Error: 1}, func(error) { reported.Add(1) })
	check := func(op string, err error) {
		t.Helper()
		if !sdk.IsTransient(err) || !strings.Contains(err.Error(), "injected fault") {
			t.Errorf("%s: %v; want a transient injected fault", op, err)
		}
	}
	_, err := st.Put(ctx, "a", strings.NewReader("x"), sdk.PutOptions{})
	check("Put", err)
	_, err = st.Get(ctx, "a", 0, -1)
	check("Get", err)
	_, err = st.Stat(ctx, "a")
	check("Stat", err)
	check("List", st.List(ctx, "", "", func(sdk.ObjectInfo) error { return nil }))
	check("Delete", st.Delete(ctx, "a"))
	if _, err := mem.Stat(ctx, "a"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("a Put failed before the store saw it, yet the object exists (%v)", err)
	}
	if c := st.Counts(); c.Calls != 5 || c.Errors != 5 || reported.Load() != 5 {
		t.Errorf("counts %+v, %d reported; want 5 calls, 5 errors, 5 reported", c, reported.Load())
	}
}

// TestDropsNeverLeavePartialObjects: a dropped Put either lands whole (its
// reply lost) or leaves nothing; a dropped Get yields a prefix, then a
// transient error.
func TestDropsNeverLeavePartialObjects(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New()
	st := faults.Wrap(mem, faults.Spec{Drop: 1, Seed: 42, HasSeed: true}, nil)
	data := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 150<<10) }
	landed := 0
	for i := range 40 {
		key := fmt.Sprintf("k%02d", i)
		if _, err := st.Put(ctx, key, bytes.NewReader(data(i)), sdk.PutOptions{}); !sdk.IsTransient(err) {
			t.Fatalf("dropped Put %s: %v; want a transient error", key, err)
		}
		rc, err := mem.Get(ctx, key, 0, -1)
		if errors.Is(err, sdk.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data(i)) {
			t.Fatalf("dropped Put %s left %d bytes, want all %d or none", key, len(got), len(data(i)))
		}
		landed++
	}
	if landed == 0 || landed == 40 {
		t.Errorf("%d of 40 dropped Puts landed; want some to land (reply lost) and some not (cut short)", landed)
	}

	if _, err := mem.Put(ctx, "big", bytes.NewReader(data(1)), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := st.Get(ctx, "big", 0, -1)
	if err != nil {
		if !sdk.IsTransient(err) {
			t.Fatalf("dropped Get: %v", err)
		}
		return
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if !sdk.IsTransient(err) || len(got) >= len(data(1)) || !bytes.Equal(got, data(1)[:len(got)]) {
		t.Errorf("dropped Get read %d bytes then %v; want a prefix of the object, then a transient error", len(got), err)
	}
}
