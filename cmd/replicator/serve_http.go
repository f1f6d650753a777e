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
	DB           string `json:"db"`
	Generation   string `json:"generation"`
	TxID         uint64 `json:"txid"`
	SyncInterval string `json:"sync_interval"`
	// StagedBytes is what the local state holds for the replicas;
	// MaxLocalSize its limit (0: none).
	StagedBytes  int64               `json:"staged_bytes"`
	MaxLocalSize int64               `json:"max_local_size"`
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
	// RebaseSince is set while the replica awaits a re-base: when what it
	// lacked was dropped from the local state.
	RebaseSince *time.Time `json:"rebase_since,omitempty"`
	// Status is "ok", "behind" (within the health threshold), or
	// "degraded: REASON[; REASON...]".
	Status string `json:"status"`
}

// replicaHealth returns why the replica of st is unhealthy, or "" (several
// reasons are joined by "; ").
func replicaHealth(st replicate.Status, r replicate.ReplicaStatus, now time.Time) string {
	var why []string
	if r.Backend != nil {
		why = append(why, r.Backend.Error())
	}
	if r.Rebasing {
		why = append(why, fmt.Sprintf("re-basing for %s: the local state outgrew max-local-size while the replica lagged, so what it lacked was dropped; "+
			"it starts again from a fresh snapshot when its storage answers, and cannot restore the times in between",
			now.Sub(r.RebaseSince).Round(time.Second)))
	}
	behind := r.Generation != st.Generation || r.TxID < st.TxID
	since := r.LastSync
	if since.IsZero() {
		since = st.Opened
	}
	switch d := now.Sub(since); {
	case r.Err != nil:
		why = append(why, fmt.Sprintf("last upload failed: %v", r.Err))
	case behind && d > staleSyncs*st.SyncInterval:
		why = append(why, fmt.Sprintf("no successful sync for %s (sync-interval %s)", d.Round(time.Second), st.SyncInterval))
	}
	return strings.Join(why, "; ")
}

// dbHealth returns why the database's own state is unhealthy, or "".
func dbHealth(st replicate.Status) string {
	if st.MaxLocalSize > 0 && st.StagedBytes > st.MaxLocalSize {
		return fmt.Sprintf("the local state holds %d bytes for the replicas, over max-local-size %d: what is left is needed for crash recovery or a re-base",
			st.StagedBytes, st.MaxLocalSize)
	}
	return ""
}

// healthReasons lists why the daemon is degraded; none means healthy.
func healthReasons(sts []replicate.Status, now time.Time) []string {
	var out []string
	for _, st := range sts {
		if why := dbHealth(st); why != "" {
			out = append(out, fmt.Sprintf("database %s: %s", st.Path, why))
		}
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
		d := dbStatusJSON{DB: st.Path, Generation: st.Generation, TxID: st.TxID, SyncInterval: st.SyncInterval.String(),
			StagedBytes: st.StagedBytes, MaxLocalSize: max(st.MaxLocalSize, 0), Replicas: []replicaStatusJSON{}}
		for _, r := range st.Replicas {
			rj := replicaStatusJSON{Name: r.Name, Generation: r.Generation, TxID: r.TxID, LagSeconds: r.Lag.Seconds(), Status: "ok"}
			if !r.LastSync.IsZero() {
				t := r.LastSync.UTC()
				rj.LastSync = &t
			}
			if r.Err != nil {
				rj.LastError = r.Err.Error()
			}
			if r.Rebasing {
				t := r.RebaseSince.UTC()
				rj.RebaseSince = &t
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
// /databases over the statuses dbs returns; /healthz also reports the
// reasons each of more gives (followers, runs that stopped).
func newHTTPHandler(reg *metrics.Registry, dbs func() []replicate.Status, now func() time.Time, more ...func(time.Time) []string) http.Handler {
	mux := http.NewServeMux()
	if reg != nil {
		mux.Handle("GET /metrics", reg.Handler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		t := now()
		reasons := healthReasons(dbs(), t)
		for _, m := range more {
			reasons = append(reasons, m(t)...)
		}
		if len(reasons) > 0 {
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
