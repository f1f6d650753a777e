package replicate

import (
	"os"
	"path/filepath"
	"time"

	"github.com/sqlitereplicator/replicator/core/metrics"
)

// ReplicaStatus is one replica's state.
type ReplicaStatus struct {
	Name       string
	Generation string
	TxID       uint64
	LastSync   time.Time
	Err        error
	// Lag is the time since the oldest captured transaction the replica
	// does not hold; 0 when it holds everything captured.
	Lag time.Duration
	// Rebasing is set from when what the replica lacked was dropped
	// (the local state outgrew MaxLocalSize) until a fresh snapshot
	// reached it; RebaseSince is when it was marked.
	Rebasing    bool
	RebaseSince time.Time
	// Backend is the storage's own trouble, such as a plugin that keeps
	// dying and is restarting with backoff; nil when it has none (or
	// cannot tell).
	Backend error
}

// backendHealth is implemented by stores that can tell their own trouble
// apart from a failed request (sdk/host's plugin stores).
type backendHealth interface{ Health() error }

// Status is the database's state, for health checks and the databases
// command.
type Status struct {
	Path         string
	Generation   string
	TxID         uint64
	SyncInterval time.Duration
	// Opened is when replication started: a replica with no successful
	// sync yet has been behind since then at most.
	Opened   time.Time
	Replicas []ReplicaStatus
	// StagedBytes is the size of the staged objects at the last clean-up
	// (every few seconds); MaxLocalSize is their limit, <= 0 for none.
	StagedBytes  int64
	MaxLocalSize int64
}

// Status reports the captured position and each replica's.
func (d *DB) Status() Status {
	p := d.Captured()
	d.mu.Lock()
	staged := d.staged
	d.mu.Unlock()
	return Status{Path: d.cfg.Path, Generation: p.Generation, TxID: p.TxID, SyncInterval: d.cfg.SyncInterval, Opened: d.opened, Replicas: d.Replicas(),
		StagedBytes: staged, MaxLocalSize: d.cfg.MaxLocalSize}
}

func (d *DB) metricsState() metrics.DBState {
	st := d.Status()
	s := metrics.DBState{DB: st.Path, TxID: st.TxID, LocalStateBytes: dirSize(d.stateDir), LocalStateLimit: st.MaxLocalSize}
	for _, r := range st.Replicas {
		s.Replicas = append(s.Replicas, metrics.ReplicaState{Name: r.Name, TxID: r.TxID, Lag: r.Lag, LastSync: r.LastSync, Rebasing: r.Rebasing})
	}
	return s
}

// dirSize is the total size of the files under dir; files removed while it
// walks are skipped.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// Replicas reports each replica's durable position.
func (d *DB) Replicas() []ReplicaStatus {
	var out []ReplicaStatus
	for _, u := range d.ups {
		p, synced, err := u.status()
		rs := ReplicaStatus{Name: u.r.Name, Generation: p.Generation, TxID: p.TxID, LastSync: synced, Err: err, Lag: d.lag(p, time.Now()),
			Rebasing: p.Rebase, RebaseSince: p.RebaseSince}
		if h, ok := u.r.Storage().(backendHealth); ok {
			rs.Backend = h.Health()
		}
		out = append(out, rs)
	}
	return out
}
