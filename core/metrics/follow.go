package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// FollowState is one follower's state at scrape time.
type FollowState struct {
	Path       string // the local database
	Replica    string
	TxID       uint64
	CommitTime time.Time     // of the primary's transaction the local database is at
	UploadLag  time.Duration // upload of the last applied segment → local commit
	LastPoll   time.Time     // last successful poll; zero if none
	Segments   int
	Resyncs    int
	LocalWrite int
}

var (
	descFollowTxID = prometheus.NewDesc("replicator_follow_txid",
		"Transaction ID of the primary the local database is at.", []string{"path", "replica"}, nil)
	descFollowBehind = prometheus.NewDesc("replicator_follow_behind_seconds",
		"Time since the primary committed the transaction the local database is at (grows while the primary is idle).", []string{"path", "replica"}, nil)
	descFollowLag = prometheus.NewDesc("replicator_follow_lag_seconds",
		"From the upload of the last applied segment to the replica until it was visible in the local database.", []string{"path", "replica"}, nil)
	descFollowPoll = prometheus.NewDesc("replicator_follow_last_poll_timestamp_seconds",
		"Unix time of the last successful poll of the replica (0: none).", []string{"path", "replica"}, nil)
	descFollowSegments = prometheus.NewDesc("replicator_follow_segments_applied_total",
		"Segments applied to the local database.", []string{"path", "replica"}, nil)
	descFollowResyncs = prometheus.NewDesc("replicator_follow_resyncs_total",
		"Full re-synchronisations of the local database (new generation, chain mismatch, local write).", []string{"path", "replica"}, nil)
	descFollowLocal = prometheus.NewDesc("replicator_follow_local_writes_total",
		"Writes to the local database by another writer, detected and repaired.", []string{"path", "replica"}, nil)
)

// Follows is the metrics of the daemon's followers; register it once with
// Registry.RegisterFollows.
type Follows struct {
	followers sources[FollowState]
}

// RegisterFollows adds the follower metrics to the registry and returns
// them; nil on a nil Registry (which records nothing).
func (r *Registry) RegisterFollows() *Follows {
	if r == nil {
		return nil
	}
	f := &Follows{}
	r.reg.MustRegister(f)
	return f
}

// Track adds a follower read at every scrape; the returned function
// removes it.
func (f *Follows) Track(state func() FollowState) (untrack func()) {
	if f == nil {
		return func() {}
	}
	return f.followers.add(state)
}

// Describe implements prometheus.Collector.
func (f *Follows) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFollowTxID, descFollowBehind, descFollowLag, descFollowPoll, descFollowSegments, descFollowResyncs, descFollowLocal} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (f *Follows) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, fn := range f.followers.all() {
		s := fn()
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.Path, s.Replica)
		}
		c := func(d *prometheus.Desc, v int) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), s.Path, s.Replica)
		}
		g(descFollowTxID, float64(s.TxID))
		behind := 0.0
		if !s.CommitTime.IsZero() {
			behind = now.Sub(s.CommitTime).Seconds()
		}
		g(descFollowBehind, behind)
		g(descFollowLag, s.UploadLag.Seconds())
		poll := 0.0
		if !s.LastPoll.IsZero() {
			poll = float64(s.LastPoll.UnixNano()) / 1e9
		}
		g(descFollowPoll, poll)
		c(descFollowSegments, s.Segments)
		c(descFollowResyncs, s.Resyncs)
		c(descFollowLocal, s.LocalWrite)
	}
}
