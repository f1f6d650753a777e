package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sqlitereplicator/replicator/core/metrics"
	"github.com/sqlitereplicator/replicator/core/replicate"
)

// defaultAddr is where the daemon serves /metrics, /healthz and
// /databases: loopback, so nothing is exposed unless asked.
const defaultAddr = "127.0.0.1:9090"

// staleSyncs is how many sync intervals a replica may stay behind without
// a successful sync before /healthz reports it.
const staleSyncs = 10

// dbStatusJSON is one database in GET /databases.
type dbStatusJSON struct {
	DB           string              `json:"db"`
	Generation   string              `json:"generation"`
	TxID         uint64              `json:"txid"`
	SyncInterval string              `json:"sync_interval"`
	Replicas     []replicaStatusJSON `json:"replicas"`
}

// replicaStatusJSON is one replica in GET /databases.
type replicaStatusJSON struct {
	Name       string     `json:"name"`
	Generation string     `json:"generation"`
	TxID       uint64     `json:"txid"`
	LagSeconds float64    `json:"lag_seconds"`
	LastSync   *time.Time `json:"last_sync,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	// Status is "ok", "behind" (within the health threshold), or
	// "degraded: REASON".
	Status string `json:"status"`
}

// replicaHealth returns why the replica of st is unhealthy, or "".
func replicaHealth(st replicate.Status, r replicate.ReplicaStatus, now time.Time) string {
	if r.Err != nil {
		return fmt.Sprintf("last upload failed: %v", r.Err)
	}
	behind := r.Generation != st.Generation || r.TxID < st.TxID
	if !behind {
		return ""
	}
	since := r.LastSync
	if since.IsZero() {
		since = st.Opened
	}
	if d := now.Sub(since); d > staleSyncs*st.SyncInterval {
		return fmt.Sprintf("no successful sync for %s (sync-interval %s)", d.Round(time.Second), st.SyncInterval)
	}
	return ""
}

// healthReasons lists why the daemon is degraded; none means healthy.
func healthReasons(sts []replicate.Status, now time.Time) []string {
	var out []string
	for _, st := range sts {
		for _, r := range st.Replicas {
			if why := replicaHealth(st, r, now); why != "" {
				out = append(out, fmt.Sprintf("replica %s of %s: %s", r.Name, st.Path, why))
			}
		}
	}
	return out
}

func statusJSON(sts []replicate.Status, now time.Time) []dbStatusJSON {
	out := []dbStatusJSON{}
	for _, st := range sts {
		d := dbStatusJSON{DB: st.Path, Generation: st.Generation, TxID: st.TxID, SyncInterval: st.SyncInterval.String(), Replicas: []replicaStatusJSON{}}
		for _, r := range st.Replicas {
			rj := replicaStatusJSON{Name: r.Name, Generation: r.Generation, TxID: r.TxID, LagSeconds: r.Lag.Seconds(), Status: "ok"}
			if !r.LastSync.IsZero() {
				t := r.LastSync.UTC()
				rj.LastSync = &t
			}
			if r.Err != nil {
				rj.LastError = r.Err.Error()
			}
			if why := replicaHealth(st, r, now); why != "" {
				rj.Status = "degraded: " + why
			} else if r.Generation != st.Generation || r.TxID < st.TxID {
				rj.Status = "behind"
			}
			d.Replicas = append(d.Replicas, rj)
		}
		out = append(out, d)
	}
	return out
}

// newHTTPHandler serves /metrics (reg may be nil), /healthz and
// /databases over the statuses dbs returns.
func newHTTPHandler(reg *metrics.Registry, dbs func() []replicate.Status, now func() time.Time) http.Handler {
	mux := http.NewServeMux()
	if reg != nil {
		mux.Handle("GET /metrics", reg.Handler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reasons := healthReasons(dbs(), now()); len(reasons) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "degraded: %s\n", strings.Join(reasons, "; "))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /databases", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(statusJSON(dbs(), now()))
	})
	return mux
}

// listenHTTP binds addr now, so a taken address fails the command before
// any database is opened; serve starts answering.
func listenHTTP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on -addr %s: %w", addr, err)
	}
	return ln, nil
}

// serveHTTP serves h on ln until the returned stop is called.
func serveHTTP(ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	log.Info("serving /metrics, /healthz and /databases", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}
