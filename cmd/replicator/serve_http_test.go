package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// flakyStore fails every Put while fail is set, as a store that is down.
type flakyStore struct {
	sdk.Storage
	fail atomic.Bool
}

func (s *flakyStore) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	if s.fail.Load() {
		return sdk.ObjectInfo{}, sdk.Errorf(sdk.Unavailable, "test: store is down")
	}
	return s.Storage.Put(ctx, key, r, opts)
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHTTPHealthMetricsDatabases(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	st := &flakyStore{Storage: memstore.New()}
	quiet := slog.New(slog.DiscardHandler)
	r := replica.New("mem", st, quiet)
	r.Retries = 0 // report the failure at once
	reg := metrics.New()
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, SyncInterval: 10 * time.Millisecond, Metrics: reg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() {
		st.fail.Store(false) // let the final sync succeed
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	srv := httptest.NewServer(newHTTPHandler(reg, func() []replicate.Status { return []replicate.Status{d.Status()} }, time.Now))
	defer srv.Close()

	if _, err := app.Exec("INSERT INTO t (v) VALUES ('a')"); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q, want 200 ok", code, body)
	}
	code, body := get(t, srv, "/metrics")
	if code != 200 || !strings.Contains(body, `replicator_replica_lag_seconds{db="`+path+`",replica="mem"} 0`) {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	code, body = get(t, srv, "/databases")
	var dbs []dbStatusJSON
	if err := json.Unmarshal([]byte(body), &dbs); code != 200 || err != nil {
		t.Fatalf("databases: %d %v %s", code, err, body)
	}
	if len(dbs) != 1 || dbs[0].DB != path || dbs[0].TxID < 2 || len(dbs[0].Replicas) != 1 ||
		dbs[0].Replicas[0].TxID != dbs[0].TxID || dbs[0].Replicas[0].Status != "ok" || dbs[0].Replicas[0].LastSync == nil {
		t.Fatalf("databases: %s", body)
	}

	st.fail.Store(true)
	if _, err := app.Exec("INSERT INTO t (v) VALUES ('b')"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body = get(t, srv, "/healthz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz still %d %q with the store down", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(body, "degraded: replica mem of "+path+": last upload failed:") || !strings.Contains(body, "store is down") {
		t.Errorf("healthz body %q", body)
	}
	_, body = get(t, srv, "/metrics")
	if !strings.Contains(body, `result="error"}`) {
		t.Errorf("no failed upload counted:\n%s", body)
	}
	_, body = get(t, srv, "/databases")
	if !strings.Contains(body, `"status": "degraded: last upload failed:`) || !strings.Contains(body, `"last_error"`) {
		t.Errorf("databases while down: %s", body)
	}
}

func TestHealthStale(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := replicate.Status{Path: "/a.db", Generation: "g2", TxID: 10, SyncInterval: time.Second, Opened: now.Add(-time.Hour),
		Replicas: []replicate.ReplicaStatus{
			{Name: "ok", Generation: "g2", TxID: 10, LastSync: now.Add(-time.Hour)},          // caught up: idle is fine
			{Name: "recent", Generation: "g2", TxID: 9, LastSync: now.Add(-5 * time.Second)}, // behind, within 10 intervals
			{Name: "stale", Generation: "g2", TxID: 9, LastSync: now.Add(-12 * time.Second)},
			{Name: "never", Generation: "g1", TxID: 10},
		}}
	got := healthReasons([]replicate.Status{st}, now)
	want := []string{
		"replica stale of /a.db: no successful sync for 12s (sync-interval 1s)",
		"replica never of /a.db: no successful sync for 1h0m0s (sync-interval 1s)",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("reasons:\n%q\nwant\n%q", got, want)
	}
	js := statusJSON([]replicate.Status{st}, now)
	var sts []string
	for _, r := range js[0].Replicas {
		sts = append(sts, r.Status)
	}
	if sts[0] != "ok" || sts[1] != "behind" || !strings.HasPrefix(sts[2], "degraded: no successful sync") || js[0].Replicas[3].LastSync != nil {
		t.Errorf("statuses %q", sts)
	}
}

// TestHealthOutageReasons: a replica awaiting a re-base, a plugin that is
// restarting, and a local state over its limit each degrade /healthz with
// a reason that names them; a caught-up replica with none stays healthy.
func TestHealthOutageReasons(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := replicate.Status{Path: "/a.db", Generation: "g", TxID: 10, SyncInterval: time.Second, Opened: now.Add(-time.Hour),
		StagedBytes: 100, MaxLocalSize: 1000}
	for _, tc := range []struct {
		name   string
		staged int64
		r      replicate.ReplicaStatus
		want   []string
	}{
		{name: "healthy", r: replicate.ReplicaStatus{Name: "s3", Generation: "g", TxID: 10}},
		{name: "rebasing", r: replicate.ReplicaStatus{Name: "s3", Generation: "g", TxID: 3, LastSync: now, Rebasing: true, RebaseSince: now.Add(-90 * time.Second)},
			want: []string{"replica s3 of /a.db: re-basing for 1m30s: the local state outgrew max-local-size"}},
		{name: "rebasing and failing", r: replicate.ReplicaStatus{Name: "s3", Generation: "g", TxID: 3, Rebasing: true, RebaseSince: now, Err: errors.New("boom")},
			want: []string{"replica s3 of /a.db: re-basing for 0s", "; last upload failed: boom"}},
		{name: "plugin restarting", r: replicate.ReplicaStatus{Name: "s3", Generation: "g", TxID: 10,
			Backend: errors.New("plugin s3 restarting: attempt 4, next in 400ms (the plugin process exited)")},
			want: []string{"replica s3 of /a.db: plugin s3 restarting: attempt 4, next in 400ms"}},
		{name: "over the limit", staged: 5000, r: replicate.ReplicaStatus{Name: "s3", Generation: "g", TxID: 10},
			want: []string{"database /a.db: the local state holds 5000 bytes for the replicas, over max-local-size 1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := base
			if tc.staged != 0 {
				st.StagedBytes = tc.staged
			}
			st.Replicas = []replicate.ReplicaStatus{tc.r}
			got := strings.Join(healthReasons([]replicate.Status{st}, now), "|")
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("reasons %q, want none", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Fatalf("reasons %q, want %q in them", got, w)
				}
			}
			js := statusJSON([]replicate.Status{st}, now)
			if rs := js[0].Replicas[0]; (rs.RebaseSince != nil) != tc.r.Rebasing || js[0].MaxLocalSize != 1000 {
				t.Fatalf("databases JSON %+v", js[0])
			}
		})
	}
}
