package metrics_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// scrape returns every sample the handler serves, keyed by name{labels}.
func scrape(t *testing.T, reg *metrics.Registry) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !strings.HasPrefix(l, "replicator_") {
			continue // the Go and process collectors
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", l, err)
		}
		k := norm(l[:i])
		if _, dup := out[k]; dup {
			t.Fatalf("duplicate sample %q", k)
		}
		out[k] = v
	}
	return out
}

// norm sorts a sample's labels, so that samples compare whatever order
// the exposition writes them in.
func norm(sample string) string {
	name, labels, ok := strings.Cut(sample, "{")
	if !ok {
		return sample
	}
	labels = strings.TrimSuffix(labels, "}")
	var parts []string
	for labels != "" {
		// label="value", where the value may hold escaped quotes
		eq := strings.Index(labels, "=\"")
		j := eq + 2
		for j < len(labels) && labels[j] != '"' {
			if labels[j] == '\\' {
				j++
			}
			j++
		}
		parts = append(parts, labels[:j+1])
		labels = strings.TrimPrefix(labels[j+1:], ",")
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

func TestExposition(t *testing.T) {
	reg := metrics.New()
	reg.Upload("/d.db", "s3", "segment", 100, nil)
	reg.Upload("/d.db", "s3", "segment", 50, nil)
	reg.Upload("/d.db", "s3", "snapshot", 10, errors.New("boom"))
	reg.Checkpoint("/d.db", metrics.ModePassive, metrics.ResultOK)
	reg.Checkpoint("/d.db", metrics.ModePassive, metrics.ResultSkipped)
	reg.Generation("/d.db", "")
	reg.PluginRestart("sftp")
	reg.Rebase("/d.db", "s3")
	reg.ReplicaLost("/d.db", "s3")
	sync := time.Unix(1700000000, 500e6)
	untrack := reg.Track(func() metrics.DBState {
		return metrics.DBState{DB: `/x"y.db`, TxID: 42, LocalStateBytes: 4096, LocalStateLimit: 1 << 20,
			Replicas: []metrics.ReplicaState{{Name: "s3", TxID: 40, Lag: 1500 * time.Millisecond, LastSync: sync},
				{Name: "gcs", TxID: 7, Rebasing: true}}}
	})
	got := scrape(t, reg)
	want := map[string]float64{
		`replicator_replica_upload_requests_total{db="/d.db",replica="s3",operation="segment",result="ok"}`:     2,
		`replicator_replica_upload_bytes_total{db="/d.db",replica="s3",operation="segment",result="ok"}`:        150,
		`replicator_replica_upload_requests_total{db="/d.db",replica="s3",operation="snapshot",result="error"}`: 1,
		`replicator_checkpoints_total{db="/d.db",mode="passive",result="ok"}`:                                   1,
		`replicator_checkpoints_total{db="/d.db",mode="passive",result="skipped"}`:                              1,
		`replicator_replica_rebases_total{db="/d.db",replica="s3"}`:                                             1,
		`replicator_replica_lost_total{db="/d.db",replica="s3"}`:                                                1,
		`replicator_generations_total{db="/d.db",reason="unknown"}`:                                             1,
		`replicator_plugin_restarts_total{plugin="sftp"}`:                                                       1,
		`replicator_databases`:                                                       1,
		`replicator_db_txid{db="/x\"y.db"}`:                                          42,
		`replicator_local_state_bytes{db="/x\"y.db"}`:                                4096,
		`replicator_replica_txid{db="/x\"y.db",replica="s3"}`:                        40,
		`replicator_replica_lag_seconds{db="/x\"y.db",replica="s3"}`:                 1.5,
		`replicator_replica_last_sync_timestamp_seconds{db="/x\"y.db",replica="s3"}`: 1700000000.5,
		`replicator_local_state_limit_bytes{db="/x\"y.db"}`:                          1 << 20,
		`replicator_replica_rebasing{db="/x\"y.db",replica="s3"}`:                    0,
		`replicator_replica_rebasing{db="/x\"y.db",replica="gcs"}`:                   1,
		`replicator_replica_txid{db="/x\"y.db",replica="gcs"}`:                       7,
	}
	for k, v := range want {
		if g, ok := got[norm(k)]; !ok || g != v {
			t.Errorf("%s = %v, want %v", k, got[norm(k)], v)
		}
	}
	untrack()
	if got := scrape(t, reg); got[norm(`replicator_databases`)] != 0 || len(got) != 11 {
		t.Errorf("after untrack: %v", got)
	}
	var nilReg *metrics.Registry // a nil registry records nothing and does not panic
	nilReg.Upload("a", "b", "segment", 1, nil)
	nilReg.Checkpoint("a", metrics.ModePassive, metrics.ResultOK)
	nilReg.Rebase("a", "b")
	nilReg.ReplicaLost("a", "b")
	nilReg.Generation("a", "x")
	nilReg.Track(nil)()
	nilReg.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
}

func TestReplicateMetrics(t *testing.T) {
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
	reg := metrics.New()
	r := replica.New("mem", memstore.New(), slog.New(slog.DiscardHandler))
	d, err := replicate.Open(ctx, replicate.Config{Path: path, Replicas: []*replica.Replica{r}, SyncInterval: 10 * time.Millisecond,
		Metrics: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for i := range 20 {
		if _, err := app.Exec("INSERT INTO t (v) VALUES (?)", strings.Repeat(fmt.Sprint(i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := scrape(t, reg)
	db := fmt.Sprintf("db=%q", path)
	rep := db + `,replica="mem"`
	txid := got[norm("replicator_db_txid{"+db+"}")]
	if txid < 21 {
		t.Errorf("db txid %v, want at least 21 (create table and 20 inserts)", txid)
	}
	if st := d.Status(); float64(st.TxID) != txid {
		t.Errorf("db txid %v, Status says %d", txid, st.TxID)
	}
	if v := got[norm("replicator_replica_txid{"+rep+"}")]; v != txid {
		t.Errorf("replica txid %v, want %v", v, txid)
	}
	if v := got[norm("replicator_replica_lag_seconds{"+rep+"}")]; v != 0 {
		t.Errorf("lag %v after Sync, want 0", v)
	}
	if v := got[norm("replicator_replica_last_sync_timestamp_seconds{"+rep+"}")]; v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last sync %v", v)
	}
	if v := got[norm("replicator_local_state_bytes{"+db+"}")]; v <= 0 {
		t.Errorf("local state bytes %v", v)
	}
	var reqs, bytes float64
	for _, op := range []string{"segment", "snapshot"} {
		reqs += got[norm(`replicator_replica_upload_requests_total{`+rep+`,operation="`+op+`",result="ok"}`)]
		bytes += got[norm(`replicator_replica_upload_bytes_total{`+rep+`,operation="`+op+`",result="ok"}`)]
	}
	if reqs < 1 || bytes <= 0 {
		t.Errorf("uploads ok: %v requests, %v bytes", reqs, bytes)
	}
	var gens float64
	for k, v := range got {
		if strings.HasPrefix(k, "replicator_generations_total{"+db) {
			gens += v
		}
	}
	if gens != 1 {
		t.Errorf("generations %v, want 1 (the first); samples %v", gens, got)
	}
}
