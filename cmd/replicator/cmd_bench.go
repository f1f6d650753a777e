package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	_ "modernc.org/sqlite" // the application's "sqlite" driver

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/sqliteuri"
)

// benchSynchronous is the application's PRAGMA synchronous, the same in
// every run, with and without the daemon: NORMAL is what WAL-mode
// applications usually run with (a commit does not fsync; a checkpoint
// does).
const benchSynchronous = "NORMAL"

// sparseGap is the spacing of the sparse scenario's commits, in
// sync-intervals: each commit follows a quiet period longer than the
// interval, which is what "sparse" means for the lag target.
const sparseGap = 1.5

// Targets on a local-directory replica.
const (
	targetSparseP50 = 50 * time.Millisecond
	targetSparseP99 = 250 * time.Millisecond
	targetLoadSlack = 100 * time.Millisecond // p99 under load: sync interval + this
	targetRatio     = 0.97
)

type benchResult struct {
	Date       time.Time        `json:"date"`
	Machine    benchMachine     `json:"machine"`
	Settings   benchSettings    `json:"settings"`
	Replica    string           `json:"replica"`
	Scenarios  []benchScenario  `json:"scenarios"`
	Throughput *benchThroughput `json:"throughput,omitempty"`
	Targets    map[string]bool  `json:"targets_met"`
	Notes      []string         `json:"notes,omitempty"`
	order      []string         // Targets' keys in print order
}

type benchMachine struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Go      string `json:"go"`
	LoadAvg string `json:"loadavg,omitempty"`
}

type benchSettings struct {
	Duration     string `json:"duration"`
	SyncInterval string `json:"sync_interval"`
	Synchronous  string `json:"synchronous"`
	// AppAutocheckpoint is the application's wal_autocheckpoint in the
	// runs with the daemon.
	AppAutocheckpoint int `json:"app_autocheckpoint"`
}

// benchScenario is one lag scenario. Lag is from the commit's return to
// the first moment the replica was seen to hold it; staged is from the
// commit's return to the daemon having staged it durably on local disk.
type benchScenario struct {
	Name        string  `json:"name"`
	TargetRate  float64 `json:"target_rate"`
	Commits     int     `json:"commits"`
	Seconds     float64 `json:"seconds"`
	Rate        float64 `json:"rate"`
	LagP50ms    float64 `json:"lag_p50_ms"`
	LagP99ms    float64 `json:"lag_p99_ms"`
	LagMaxms    float64 `json:"lag_max_ms"`
	StagedP50ms float64 `json:"staged_p50_ms"`
	StagedP99ms float64 `json:"staged_p99_ms"`
	Uploads     int     `json:"uploads"`
}

type benchThroughput struct {
	Seconds        float64 `json:"seconds_each"`
	WithoutCommits int     `json:"without_daemon_commits"`
	WithCommits    int     `json:"with_daemon_commits"`
	WithoutRate    float64 `json:"without_daemon_txn_s"`
	WithRate       float64 `json:"with_daemon_txn_s"`
	Ratio          float64 `json:"ratio"`
	// The writer's waits: gaps between two commits of a millisecond or
	// more (checkpoints, its own or the daemon's write lock), where the
	// time the writer lost goes.
	WithoutWaits benchWaits `json:"without_daemon_waits"`
	WithWaits    benchWaits `json:"with_daemon_waits"`
}

// benchWaits counts gaps between commits by length: 1–5 ms, 5–20 ms and
// 20 ms or more, and their total time.
type benchWaits struct {
	Counts  [3]int  `json:"counts_1ms_5ms_20ms"`
	Seconds float64 `json:"seconds"`
}

var waitEdges = [...]time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond}

// add counts the gaps between the commit times ts.
func (w *benchWaits) add(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		gap := ts[i].Sub(ts[i-1])
		k := len(waitEdges) - 1
		for k >= 0 && gap < waitEdges[k] {
			k--
		}
		if k >= 0 {
			w.Counts[k]++
			w.Seconds += gap.Seconds()
		}
	}
}

func (w benchWaits) String() string {
	return fmt.Sprintf("%.2f s: %d of 1-5 ms, %d of 5-20 ms, %d of 20 ms or more", w.Seconds, w.Counts[0], w.Counts[1], w.Counts[2])
}

func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "scale" {
		return runBenchScale(ctx, e, args[1:]) // cmd_bench_scale.go
	}
	fs := newFlags(e, "bench", "[-dir DIR] [-duration 10s] [-sync-interval 1s] [-only lag|throughput] [-app-autocheckpoint 1000] [-json]")
	dir := fs.String("dir", "", "directory to work in, on the file system to measure (default: a temporary directory); a fresh subdirectory is created and removed")
	duration := fs.Duration("duration", 10*time.Second, "length of each loaded scenario, and the writing time on each side of the throughput comparison")
	syncInterval := fs.Duration("sync-interval", time.Second, "the daemon's -sync-interval")
	sparse := fs.Int("sparse", 20, "commits in the sparse scenario, each 1.5 sync-intervals after the last")
	only := fs.String("only", "", "run only the lag scenarios (lag) or only the throughput comparison (throughput); default both")
	asJSON := fs.Bool("json", false, "print JSON")
	autoCkpt := fs.Int("app-autocheckpoint", sqliteAutocheckpoint, "the application's PRAGMA wal_autocheckpoint in the runs with the daemon (0: off, to see what the application's own checkpoint attempts cost it; the runs without the daemon keep SQLite's default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("takes no arguments")
	}
	if *duration < 10*time.Millisecond {
		return usagef("-duration must be at least 10ms")
	}
	if *syncInterval <= 0 {
		return usagef("-sync-interval must be positive")
	}
	if *sparse < 1 {
		return usagef("-sparse must be at least 1")
	}
	if *autoCkpt < 0 {
		return usagef("-app-autocheckpoint must be 0 (off) or a number of pages")
	}
	runLag, runTput := *only != "throughput", *only != "lag"
	if *only != "" && *only != "lag" && *only != "throughput" {
		return usagef("-only must be lag or throughput, not %q", *only)
	}
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp(*dir, "replicator-bench-")
	if err != nil {
		return err
	}
	if work, err = filepath.Abs(work); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// The daemon and the plugin log only warnings, so the report stays
	// readable.
	qe := &env{stdout: e.stdout, stderr: e.stderr, log: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	b := &bench{e: qe, work: work, sync: *syncInterval, autoCkpt: *autoCkpt}
	sparseEvery := time.Duration(sparseGap * float64(*syncInterval))

	res := benchResult{
		Date:     time.Now().UTC(),
		Machine:  machineInfo(),
		Settings: benchSettings{Duration: duration.String(), SyncInterval: syncInterval.String(), Synchronous: benchSynchronous, AppAutocheckpoint: *autoCkpt},
		Replica:  "local directory (fs plugin, out-of-process), on the same file system as the database",
	}
	if !*asJSON {
		var about time.Duration
		if runLag {
			about += 2*(*duration) + time.Duration(*sparse)*sparseEvery
		}
		if runTput {
			about += 2 * (*duration)
		}
		fmt.Fprintf(e.stderr, "bench in %s: about %s\n", work, about.Round(time.Second))
	}
	if runLag {
		if err := b.lag(ctx, &res, *sparse, sparseEvery, *duration); err != nil {
			return err
		}
	}
	if runTput {
		tp, err := b.throughput(ctx, *duration/2)
		if err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
		res.Throughput = &tp
	}
	res.judge(*syncInterval)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.print(e.stdout)
	return nil
}

// lag runs the three lag scenarios in turn on one database and one daemon.
func (b *bench) lag(ctx context.Context, res *benchResult, sparseN int, sparseEvery, duration time.Duration) error {
	scen := []struct {
		name  string
		rate  float64
		n     int
		limit time.Duration
	}{
		{fmt.Sprintf("sparse (1 per %s)", sparseEvery), float64(time.Second) / float64(sparseEvery), sparseN, 0},
		{"100 txn/s", 100, int(100 * duration.Seconds()), duration},
		{"1000 txn/s", 1000, int(1000 * duration.Seconds()), duration},
	}
	return b.withDaemon(ctx, "lag", func(app *benchApp, dm *benchDaemon) error {
		// Start after a quiet period, as the first sparse commit should.
		time.Sleep(sparseEvery)
		for _, s := range scen {
			r, err := dm.scenario(ctx, app, s.name, s.rate, s.n, s.limit)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			res.Scenarios = append(res.Scenarios, r)
		}
		return nil
	})
}

// throughput compares one writer going as fast as it can without and with
// the daemon: A B B A (without, with, with, without), each run of half on
// a fresh database, so drift in the machine's load weighs on both sides
// alike.
func (b *bench) throughput(ctx context.Context, half time.Duration) (benchThroughput, error) {
	var without, with [2]float64 // commits, seconds
	var t benchThroughput
	for i, daemon := range []bool{false, true, true, false} {
		name := fmt.Sprintf("tput%d", i)
		var commits int
		var took time.Duration
		waits := &t.WithoutWaits
		if daemon {
			waits = &t.WithWaits
		}
		run := func(app *benchApp) error {
			ts, d, err := app.write(ctx, 0, math.MaxInt, half)
			commits, took = len(ts), d
			waits.add(ts)
			return err
		}
		var err error
		if daemon {
			err = b.withDaemonProcess(ctx, name, func(app *benchApp) (int, error) {
				err := run(app)
				return commits, err
			})
		} else {
			err = b.withApp(name, sqliteAutocheckpoint, run)
		}
		if err != nil {
			return benchThroughput{}, err
		}
		acc := &without
		if daemon {
			acc = &with
		}
		acc[0] += float64(commits)
		acc[1] += took.Seconds()
	}
	t.Seconds = 2 * half.Seconds()
	t.WithoutCommits, t.WithCommits = int(without[0]), int(with[0])
	t.WithoutRate, t.WithRate = without[0]/without[1], with[0]/with[1]
	t.Ratio = t.WithRate / t.WithoutRate
	return t, nil
}

// judge compares the results with the targets.
func (r *benchResult) judge(syncInterval time.Duration) {
	r.Targets = map[string]bool{}
	add := func(k string, ok bool) { r.Targets[k] = ok; r.order = append(r.order, k) }
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	for i, s := range r.Scenarios {
		if i == 0 {
			add(fmt.Sprintf("%s: p50 <= %v", s.Name, targetSparseP50), s.LagP50ms <= ms(targetSparseP50))
			add(fmt.Sprintf("%s: p99 <= %v", s.Name, targetSparseP99), s.LagP99ms <= ms(targetSparseP99))
			continue
		}
		lim := syncInterval + targetLoadSlack
		add(fmt.Sprintf("%s: p99 <= sync-interval + %v = %v", s.Name, targetLoadSlack, lim), s.LagP99ms <= ms(lim))
		if s.Rate < 0.95*s.TargetRate {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: the writer reached only %.0f txn/s on this machine", s.Name, s.Rate))
		}
	}
	if r.Throughput != nil {
		add(fmt.Sprintf("throughput ratio >= %.2f", targetRatio), r.Throughput.Ratio >= targetRatio)
	}
}

func (r *benchResult) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "replicator bench, %s\n", r.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "machine:  %s, %d cores, %s/%s, %s, load average %s\n", m.CPU, m.Cores, m.OS, m.Arch, m.Go, m.LoadAvg)
	fmt.Fprintf(w, "settings: sync-interval %s, synchronous=%s, duration %s", r.Settings.SyncInterval, r.Settings.Synchronous, r.Settings.Duration)
	if a := r.Settings.AppAutocheckpoint; a != sqliteAutocheckpoint {
		fmt.Fprintf(w, ", application wal_autocheckpoint=%d with the daemon", a)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "replica:  %s\n\n", r.Replica)
	if len(r.Scenarios) > 0 {
		width := len("scenario")
		for _, s := range r.Scenarios {
			width = max(width, len(s.Name))
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "%-*s\tcommits\ttxn/s\tlag p50\tlag p99\tlag max\tstaged p50\tstaged p99\tuploads\t\n", width, "scenario")
		for _, s := range r.Scenarios {
			fmt.Fprintf(tw, "%-*s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d\t\n", width, s.Name, s.Commits, s.Rate,
				fmtMS(s.LagP50ms), fmtMS(s.LagP99ms), fmtMS(s.LagMaxms), fmtMS(s.StagedP50ms), fmtMS(s.StagedP99ms), s.Uploads)
		}
		tw.Flush()
	}
	if t := r.Throughput; t != nil {
		each := time.Duration(t.Seconds * float64(time.Second)).Round(time.Millisecond)
		fmt.Fprintf(w, "\nthroughput, one writer as fast as it can (%v each, in runs without/with/with/without):\n", each)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "without daemon   \t%d commits\t%.0f txn/s\t\n", t.WithoutCommits, t.WithoutRate)
		fmt.Fprintf(tw, "with daemon      \t%d commits\t%.0f txn/s\t\n", t.WithCommits, t.WithRate)
		fmt.Fprintf(tw, "ratio\t\t%.3f\t\n", t.Ratio)
		tw.Flush()
		fmt.Fprintf(w, "the writer's waits of 1 ms or more between two commits (checkpoints, the daemon's write lock):\n")
		fmt.Fprintf(w, "  without daemon  %s\n  with daemon     %s\n", t.WithoutWaits, t.WithWaits)
	}
	fmt.Fprintln(w, "\ntargets:")
	for _, k := range r.order {
		verdict := "met"
		if !r.Targets[k] {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  %-6s %s\n", verdict, k)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func fmtMS(ms float64) string {
	if ms >= 100 {
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f ms", ms)
}

// bench holds what the runs share.
type bench struct {
	e        *env
	work     string
	sync     time.Duration
	autoCkpt int // the application's wal_autocheckpoint with the daemon
}

// sqliteAutocheckpoint is SQLite's default wal_autocheckpoint, in pages.
const sqliteAutocheckpoint = 1000

// withApp creates a fresh database NAME.db and runs f with the
// application's connection to it.
func (b *bench) withApp(name string, autoCkpt int, f func(*benchApp) error) error {
	app, err := openBenchApp(filepath.Join(b.work, name+".db"), autoCkpt)
	if err != nil {
		return err
	}
	defer app.close()
	return f(app)
}

// withDaemon is withApp with the daemon replicating the database to the
// local directory replica/NAME, through the real plugin path.
func (b *bench) withDaemon(ctx context.Context, name string, f func(*benchApp, *benchDaemon) error) error {
	return b.withApp(name, b.autoCkpt, func(app *benchApp) error {
		rc := config.ReplicaConfig{Type: "file", Name: "file", Settings: map[string]string{"path": filepath.Join(b.work, "replica", name)}}
		r, closeReplica, err := openReplica(ctx, b.e, rc)
		if err != nil {
			return err
		}
		defer closeReplica()
		d, err := replicate.Open(ctx, replicate.Config{Path: app.path, Replicas: []*replica.Replica{r}, SyncInterval: b.sync, Compression: segment.DefaultCompression, Logger: b.e.log})
		if err != nil {
			return err
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(runCtx) }()
		dm := &benchDaemon{d: d, done: done, sync: b.sync}
		err = dm.ready(ctx)
		if err == nil {
			err = f(app, dm)
		}
		stop()
		if rerr := <-done; rerr != nil && !errors.Is(rerr, context.Canceled) {
			err = errors.Join(err, fmt.Errorf("daemon: %w", rerr))
		}
		return err
	})
}

// benchApp is the application: one connection, one prepared insert.
type benchApp struct {
	path string
	db   *sql.DB
	ins  *sql.Stmt
	seq  int64
}

func openBenchApp(path string, autoCkpt int) (*benchApp, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", autoCkpt))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous("+benchSynchronous+")")
	db, err := sql.Open("sqlite", sqliteuri.For(path, q))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, v TEXT NOT NULL)"); err != nil {
		db.Close()
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	ins, err := db.Prepare("INSERT INTO t (at, v) VALUES (?, ?)")
	if err != nil {
		db.Close()
		return nil, err
	}
	return &benchApp{path: path, db: db, ins: ins}, nil
}

func (a *benchApp) close() { a.ins.Close(); a.db.Close() }

var benchPayload = strings.Repeat("replicator bench row ", 5) // ~100 bytes

// write commits one row per transaction, one every `every` (0: as fast as
// it can; when behind schedule, at once), until n commits or limit has
// passed (0: no limit). It returns when each commit returned and how long
// the run took: for a paced run at least n*every, the whole schedule.
func (a *benchApp) write(ctx context.Context, every time.Duration, n int, limit time.Duration) ([]time.Time, time.Duration, error) {
	begin := time.Now()
	var commits []time.Time
	for i := 0; i < n; i++ {
		if every > 0 {
			if d := time.Until(begin.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if limit > 0 && time.Since(begin) >= limit {
			break
		}
		a.seq++
		if _, err := a.ins.Exec(a.seq, benchPayload); err != nil {
			return nil, 0, fmt.Errorf("commit %d: %w", i+1, err)
		}
		commits = append(commits, time.Now())
	}
	if every > 0 {
		if d := time.Until(begin.Add(time.Duration(len(commits)) * every)); d > 0 {
			time.Sleep(d)
		}
	}
	return commits, time.Since(begin), nil
}

// benchDaemon is a running replicate.DB.
type benchDaemon struct {
	d    *replicate.DB
	done chan error
	sync time.Duration
}

// ready waits until the replica holds the initial snapshot.
func (dm *benchDaemon) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- dm.d.Sync(ctx) }()
	select {
	case err := <-errc:
		return err
	case err := <-dm.done:
		return fmt.Errorf("daemon stopped: %v", err)
	}
}

type benchObs struct {
	t    time.Time
	txid uint64
}

// scenario runs the writer and measures, for each commit, when the daemon
// staged it and when the replica held it. Every commit is one transaction,
// so the k-th commit after txid start is txid start+k.
func (dm *benchDaemon) scenario(ctx context.Context, app *benchApp, name string, rate float64, n int, limit time.Duration) (benchScenario, error) {
	if err := dm.ready(ctx); err != nil {
		return benchScenario{}, err
	}
	start := dm.d.Captured()
	var staged, held []benchObs
	var heldTx atomic.Uint64
	heldTx.Store(start.TxID)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // the observer: every ~1 ms
		defer close(stopped)
		lastS, lastH := start.TxID, start.TxID
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			c := dm.d.Captured()
			rs := dm.d.Replicas()
			now := time.Now()
			if c.Generation == start.Generation && c.TxID > lastS {
				lastS = c.TxID
				staged = append(staged, benchObs{now, lastS})
			}
			if len(rs) > 0 && rs[0].Generation == start.Generation && rs[0].TxID > lastH {
				lastH = rs[0].TxID
				held = append(held, benchObs{now, lastH})
				heldTx.Store(lastH)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	commits, took, err := app.write(ctx, time.Duration(float64(time.Second)/rate), n, limit)
	if err == nil {
		err = dm.waitHeld(ctx, &heldTx, start.TxID+uint64(len(commits)))
	}
	close(stop)
	<-stopped
	if err != nil {
		return benchScenario{}, err
	}
	if c := dm.d.Captured(); c.Generation != start.Generation || c.TxID != start.TxID+uint64(len(commits)) {
		return benchScenario{}, fmt.Errorf("%d commits took the capture from %s/%d to %s/%d, not one txid each: lag cannot be attributed",
			len(commits), start.Generation, start.TxID, c.Generation, c.TxID)
	}
	lag, err := lagsOf(commits, start.TxID, held)
	if err != nil {
		return benchScenario{}, err
	}
	stg, err := lagsOf(commits, start.TxID, staged)
	if err != nil {
		return benchScenario{}, err
	}
	return benchScenario{
		Name: name, TargetRate: rate, Commits: len(commits), Seconds: took.Seconds(),
		Rate:     float64(len(commits)) / took.Seconds(),
		LagP50ms: ms(percentile(lag, 50)), LagP99ms: ms(percentile(lag, 99)), LagMaxms: ms(percentile(lag, 100)),
		StagedP50ms: ms(percentile(stg, 50)), StagedP99ms: ms(percentile(stg, 99)),
		Uploads: len(held),
	}, nil
}

// waitHeld waits until the replica holds txid want.
func (dm *benchDaemon) waitHeld(ctx context.Context, held *atomic.Uint64, want uint64) error {
	timeout := time.After(30*time.Second + 5*dm.sync)
	for held.Load() < want {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-dm.done:
			return fmt.Errorf("daemon stopped: %v", err)
		case <-timeout:
			st := dm.d.Replicas()
			return fmt.Errorf("the replica did not reach txid %d (it holds %d; err %v)", want, held.Load(), st[0].Err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// lagsOf returns, sorted, the time from each commit's return to the first
// observation of a txid at or past it.
func lagsOf(commits []time.Time, start uint64, obs []benchObs) ([]time.Duration, error) {
	out := make([]time.Duration, len(commits))
	for k, c := range commits {
		txid := start + uint64(k) + 1
		i := sort.Search(len(obs), func(i int) bool { return obs[i].txid >= txid })
		if i == len(obs) {
			return nil, fmt.Errorf("txid %d was never observed", txid)
		}
		out[k] = max(obs[i].t.Sub(c), 0)
	}
	slices.Sort(out)
	return out, nil
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func machineInfo() benchMachine {
	m := benchMachine{CPU: "unknown", Cores: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if k = strings.TrimSpace(k); ok && (k == "model name" || k == "Model" || k == "Hardware") {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}
