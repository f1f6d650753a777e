// Package metrics holds the daemon's Prometheus metrics: one Registry per
// daemon (never the global default registry), counters incremented by
// core/replicate as things happen, and gauges read from each database's
// state at scrape time, so lag keeps growing while nothing happens.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Results of an operation, the "result" label.
const (
	ResultOK      = "ok"
	ResultError   = "error"
	ResultSkipped = "skipped" // a checkpoint that gave up waiting for the write lock
)

// ReplicaState is one replica's state at scrape time.
type ReplicaState struct {
	Name     string
	TxID     uint64
	Lag      time.Duration // since the oldest captured commit the replica lacks; 0 when caught up
	LastSync time.Time     // last successful sync; zero if none since start
	// Rebasing is set while the replica waits to be re-based on a fresh
	// snapshot because the local state outgrew its limit.
	Rebasing bool
}

// DBState is one database's state at scrape time.
type DBState struct {
	DB              string
	TxID            uint64
	LocalStateBytes int64
	// LocalStateLimit is the configured max-local-size; <= 0 is unlimited.
	LocalStateLimit int64
	Replicas        []ReplicaState
}

// Registry is the daemon's metrics. Its zero value is not usable; call New.
// A nil *Registry is valid for every method and records nothing.
type Registry struct {
	reg *prometheus.Registry

	uploadBytes    *counterVec
	uploadRequests *counterVec
	checkpoints    *counterVec
	generations    *counterVec
	pluginRestarts *counterVec
	rebases        *counterVec
	lostReplicas   *counterVec
	storage        *storageMetrics

	dbs sources[DBState]
}

var (
	descTracked = prometheus.NewDesc("replicator_databases",
		"Databases this daemon replicates.", nil, nil)
	descDBTxID = prometheus.NewDesc("replicator_db_txid",
		"Last transaction ID captured from the database.", []string{"db"}, nil)
	descLocalState = prometheus.NewDesc("replicator_local_state_bytes",
		"Size of the database's local state directory (staged objects, hashes, positions).", []string{"db"}, nil)
	descReplicaTxID = prometheus.NewDesc("replicator_replica_txid",
		"Last transaction ID the replica durably holds.", []string{"db", "replica"}, nil)
	descReplicaLag = prometheus.NewDesc("replicator_replica_lag_seconds",
		"Time since the oldest captured transaction the replica does not hold yet; 0 when caught up.", []string{"db", "replica"}, nil)
	descLastSync = prometheus.NewDesc("replicator_replica_last_sync_timestamp_seconds",
		"Unix time of the replica's last successful sync (0: none since the daemon started).", []string{"db", "replica"}, nil)
	descLocalLimit = prometheus.NewDesc("replicator_local_state_limit_bytes",
		"The database's max-local-size: past it, replicas that lag are re-based (0: unlimited).", []string{"db"}, nil)
	descRebasing = prometheus.NewDesc("replicator_replica_rebasing",
		"1 while the replica waits to be re-based on a fresh snapshot (the local state outgrew max-local-size while it lagged), else 0.", []string{"db", "replica"}, nil)
)

// New returns an empty Registry, with the Go runtime and process
// collectors registered.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	r.uploadBytes = newCounterVec("replicator_replica_upload_bytes_total",
		"Bytes sent to the replica, by operation (snapshot, segment) and result (ok, error).",
		"db", "replica", "operation", "result")
	r.uploadRequests = newCounterVec("replicator_replica_upload_requests_total",
		"Uploads to the replica (each including its retries), by operation (snapshot, segment) and result (ok, error).",
		"db", "replica", "operation", "result")
	r.checkpoints = newCounterVec("replicator_checkpoints_total",
		"Checkpoints the daemon ran, by SQLite checkpoint mode and result (ok; skipped: the application held the write lock; error).",
		"db", "mode", "result")
	r.generations = newCounterVec("replicator_generations_total",
		"New generations started, by reason.",
		"db", "reason")
	r.pluginRestarts = newCounterVec("replicator_plugin_restarts_total",
		"Restarts of an out-of-process storage plugin.",
		"plugin")
	r.rebases = newCounterVec("replicator_replica_rebases_total",
		"Times a lagging replica was marked for a re-base because the local state outgrew max-local-size.",
		"db", "replica")
	r.lostReplicas = newCounterVec("replicator_replica_lost_total",
		"Times a replica was found not to hold what was uploaded to it (emptied, an object deleted, or a new URL under the same name) and was started again from a snapshot.",
		"db", "replica")
	r.storage = newStorageMetrics()
	r.reg.MustRegister(r.uploadBytes, r.uploadRequests, r.checkpoints, r.generations, r.pluginRestarts, r.rebases, r.lostReplicas,
		r.storage.requests, r.storage.bytes,
		stateCollector{r},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Gatherer is the underlying registry, for tests and custom handlers.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (r *Registry) Handler() http.Handler {
	if r == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// Track adds a database whose state is read at every scrape; the returned
// function removes it.
func (r *Registry) Track(state func() DBState) (untrack func()) {
	if r == nil {
		return func() {}
	}
	return r.dbs.add(state)
}

// Upload counts one upload to a replica of bytes bytes.
func (r *Registry) Upload(db, replica, operation string, bytes int64, err error) {
	if r == nil {
		return
	}
	res := result(err)
	r.uploadRequests.inc(db, replica, operation, res)
	if bytes > 0 {
		r.uploadBytes.add(float64(bytes), db, replica, operation, res)
	}
}

// Checkpoint modes, the "mode" label: SQLite's names, lower case.
const (
	ModePassive  = "passive"
	ModeFull     = "full"
	ModeRestart  = "restart"
	ModeTruncate = "truncate"
)

// Checkpoint counts a checkpoint in mode (ModePassive...) with result
// ResultOK, ResultSkipped or ResultError.
func (r *Registry) Checkpoint(db, mode, res string) {
	if r == nil {
		return
	}
	r.checkpoints.inc(db, mode, res)
}

// Rebase counts a replica marked for a re-base.
func (r *Registry) Rebase(db, replica string) {
	if r == nil {
		return
	}
	r.rebases.inc(db, replica)
}

// ReplicaLost counts a replica that no longer held what was uploaded to it.
func (r *Registry) ReplicaLost(db, replica string) {
	if r == nil {
		return
	}
	r.lostReplicas.inc(db, replica)
}

// Generation counts a new generation.
func (r *Registry) Generation(db, reason string) {
	if r == nil {
		return
	}
	if reason == "" {
		reason = "unknown"
	}
	r.generations.inc(db, reason)
}

// PluginRestart counts a restart of a storage plugin.
func (r *Registry) PluginRestart(plugin string) {
	if r == nil {
		return
	}
	r.pluginRestarts.inc(plugin)
}

func result(err error) string {
	if err != nil {
		return ResultError
	}
	return ResultOK
}

// stateCollector turns the tracked databases' states into gauges.
type stateCollector struct{ r *Registry }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTracked, descDBTxID, descLocalState, descLocalLimit, descReplicaTxID, descReplicaLag, descLastSync, descRebasing} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	fns := c.r.dbs.all()
	ch <- prometheus.MustNewConstMetric(descTracked, prometheus.GaugeValue, float64(len(fns)))
	for _, fn := range fns {
		s := fn()
		ch <- prometheus.MustNewConstMetric(descDBTxID, prometheus.GaugeValue, float64(s.TxID), s.DB)
		ch <- prometheus.MustNewConstMetric(descLocalState, prometheus.GaugeValue, float64(s.LocalStateBytes), s.DB)
		ch <- prometheus.MustNewConstMetric(descLocalLimit, prometheus.GaugeValue, float64(max(s.LocalStateLimit, 0)), s.DB)
		for _, rs := range s.Replicas {
			ch <- prometheus.MustNewConstMetric(descReplicaTxID, prometheus.GaugeValue, float64(rs.TxID), s.DB, rs.Name)
			ch <- prometheus.MustNewConstMetric(descReplicaLag, prometheus.GaugeValue, rs.Lag.Seconds(), s.DB, rs.Name)
			var ts float64
			if !rs.LastSync.IsZero() {
				ts = float64(rs.LastSync.UnixNano()) / 1e9
			}
			ch <- prometheus.MustNewConstMetric(descLastSync, prometheus.GaugeValue, ts, s.DB, rs.Name)
			var rebasing float64
			if rs.Rebasing {
				rebasing = 1
			}
			ch <- prometheus.MustNewConstMetric(descRebasing, prometheus.GaugeValue, rebasing, s.DB, rs.Name)
		}
	}
}
