package metrics_test

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sqlitereplicator/replicator/core/metrics"
)

// TestCountersConcurrentAndTyped: counts from many goroutines all land
// (run with -race), and the counters are exposed as counters, with help.
func TestCountersConcurrentAndTyped(t *testing.T) {
	reg := metrics.New()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				reg.Upload("/d.db", "s3", "segment", 3, nil)
				reg.Checkpoint("/d.db", metrics.ModePassive, metrics.ResultOK)
			}
			reg.Generation("/d.db", []string{"a", "b"}[g%2])
		}()
	}
	wg.Wait()
	got := scrape(t, reg)
	for k, want := range map[string]float64{
		`replicator_replica_upload_requests_total{db="/d.db",replica="s3",operation="segment",result="ok"}`: 8000,
		`replicator_replica_upload_bytes_total{db="/d.db",replica="s3",operation="segment",result="ok"}`:    24000,
		`replicator_checkpoints_total{db="/d.db",mode="passive",result="ok"}`:                               8000,
		`replicator_generations_total{db="/d.db",reason="a"}`:                                               4,
		`replicator_generations_total{db="/d.db",reason="b"}`:                                               4,
	} {
		if v := got[norm(k)]; v != want {
			t.Errorf("%s = %v, want %v", k, v, want)
		}
	}
	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, l := range []string{
		"# TYPE replicator_replica_upload_requests_total counter",
		"# HELP replicator_checkpoints_total Checkpoints the daemon ran",
	} {
		if !strings.Contains(body, l) {
			t.Errorf("the exposition lacks %q", l)
		}
	}
}
