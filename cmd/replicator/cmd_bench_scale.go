package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/sqlitereplicator/replicator/internal/install"
	"github.com/sqlitereplicator/replicator/sdk/storecount"
)

// "replicator bench scale" measures what the daemon costs while it waits:
// it starts the real daemon ("replicator replicate -config") as a child
// process over N small databases, waits until every replica holds its
// first snapshot, and then, over an idle window, reads the resident memory
// and CPU time of the daemon and its plugin processes from /proc and the
// uploads from the daemon's /metrics. Then it counts the storage requests
// of one database at a steady write rate, and times restores against a
// plain copy of the same file. docs/performance.md explains each number.

// Targets of issue #6, item 7.
var (
	// scaleRSSTargets and scaleCPUTargets are by database count: the
	// target of the smallest count at or above the run's.
	scaleRSSTargets = []scaleTarget{{1, 25}, {100, 40}, {1000, 150}} // MB
	scaleCPUTargets = []scaleTarget{{1, 0.05}, {100, 0.5}}           // % of one core
)

const (
	targetLoadRequestsPerHour = 3700 // at 50 txn/s with a 1s sync interval
	targetRestoreRatio        = 0.9  // of cp + fsync
	// targetRestoreMemGrowth is how much the restore's peak memory may
	// grow from the smallest to the largest database measured, for it to
	// count as bounded independently of the size.
	targetRestoreMemGrowth = 1.25
)

type scaleTarget struct {
	dbs   int
	limit float64
}

// targetFor returns the limit for n databases, if there is one.
func targetFor(ts []scaleTarget, n int) (float64, bool) {
	for _, t := range ts {
		if n <= t.dbs {
			return t.limit, true
		}
	}
	return 0, false
}

type scaleResult struct {
	Date     time.Time       `json:"date"`
	Machine  benchMachine    `json:"machine"`
	Settings scaleSettings   `json:"settings"`
	Idle     scaleIdle       `json:"idle"`
	Requests *scaleRequests  `json:"requests,omitempty"`
	Restores []scaleRestore  `json:"restores,omitempty"`
	Targets  map[string]bool `json:"targets_met"`
	order    []string
}

type scaleSettings struct {
	DBs          int     `json:"dbs"`
	Duration     string  `json:"duration"`
	Settle       string  `json:"settle"`
	SyncInterval string  `json:"sync_interval"`
	Rate         float64 `json:"rate_txn_s"`
	LoadDuration string  `json:"load_duration"`
	GOGC         string  `json:"gogc,omitempty"`
	GOMEMLIMIT   string  `json:"gomemlimit,omitempty"`
}

// scaleIdle is the daemon over N idle databases.
type scaleIdle struct {
	Seconds      float64 `json:"seconds"`
	ReadySeconds float64 `json:"ready_seconds"` // from start to every replica holding its first snapshot
	LoadBefore   string  `json:"loadavg_before"`
	LoadAfter    string  `json:"loadavg_after"`
	Processes    int     `json:"processes"` // the daemon and its plugin processes
	RSSMB        float64 `json:"rss_mb"`    // daemon + plugins, at the end of the window
	RSSMaxMB     float64 `json:"rss_max_mb"`
	DaemonRSSMB  float64 `json:"daemon_rss_mb"`
	AnonMB       float64 `json:"anon_mb"`     // daemon + plugins, their own (non-file) memory
	PSSMB        float64 `json:"pss_mb"`      // daemon + plugins, shared pages divided among them
	CPUPercent   float64 `json:"cpu_percent"` // of one core, daemon + plugins
	DaemonCPU    float64 `json:"daemon_cpu_percent"`
	Uploads      float64 `json:"uploads"` // from the daemon's /metrics
	// Requests is every storage request from the daemon's /metrics
	// (replicator_storage_requests_total), -1 if it exports none.
	Requests float64 `json:"storage_requests"`
	// PluginIO is the read/write system calls of the plugin processes,
	// an upper bound of the requests they served (the Go runtime's own
	// wake-ups count too); the exact request count is scaleRequests.
	PluginIO     uint64 `json:"plugin_syscalls"`
	ProcsChanged int    `json:"processes_changed,omitempty"`
	// Plugin is the executable that served the fs plugin, with its
	// arguments: replicator-fs beside this executable, or this
	// executable re-executed for the compiled-in one.
	Plugin string `json:"plugin"`
}

// scaleRequests is the exact request count of one database.
type scaleRequests struct {
	IdleSeconds  float64           `json:"idle_seconds"`
	IdleRequests int64             `json:"idle_requests"`
	Seconds      float64           `json:"seconds"`
	Commits      int               `json:"commits"`
	Rate         float64           `json:"rate_txn_s"`
	Requests     int64             `json:"requests"`
	ByOperation  storecount.Counts `json:"by_operation"`
	PerHour      float64           `json:"requests_per_hour"`
}

func runBenchScale(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench scale", "[-dbs 100] [-duration 60s] [-load-duration 2m] [-restore-size 16MiB,64MiB] [-dir DIR] [-json]")
	dbs := fs.Int("dbs", 100, "number of small databases the daemon replicates, each to a local directory of its own")
	duration := fs.Duration("duration", 60*time.Second, "length of the idle window (memory, CPU, requests), and of the idle request count")
	settle := fs.Duration("settle", 75*time.Second, "wait after every replica holds its first snapshot, before the idle window: past the first maintenance pass, which follows each database's first upload by up to a minute")
	syncInterval := fs.Duration("sync-interval", time.Second, "the daemon's -sync-interval")
	rate := fs.Float64("rate", 50, "commits per second of the request count")
	loadDuration := fs.Duration("load-duration", 2*time.Minute, "length of the request count at -rate (0 skips it); at least two minutes includes a compaction")
	restoreSizes := fs.String("restore-size", "16MiB,64MiB", `database sizes of the restore measurement, comma-separated ("" skips it); two sizes show whether memory grows with size`)
	restoreTxns := fs.Int("restore-txns", 2000, "transactions after the snapshot in the restore measurement")
	dir := fs.String("dir", "", "directory to work in (default: a temporary directory); a fresh subdirectory is created and removed")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return usagef("takes no arguments")
	case *dbs < 1:
		return usagef("-dbs must be at least 1")
	case *duration < 100*time.Millisecond:
		return usagef("-duration must be at least 100ms")
	case *syncInterval <= 0:
		return usagef("-sync-interval must be positive")
	case *rate <= 0:
		return usagef("-rate must be positive")
	case *loadDuration < 0 || *settle < 0:
		return usagef("-load-duration and -settle cannot be negative")
	case *restoreTxns < 0:
		return usagef("-restore-txns cannot be negative")
	}
	var sizes []int64
	for _, s := range strings.Split(*restoreSizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := humanize.ParseBytes(s)
		if err != nil || n < 1<<20 {
			return usagef("-restore-size: %q is not a size of at least 1MiB (like 64MiB or 1GiB)", s)
		}
		sizes = append(sizes, int64(n))
	}
	work, err := os.MkdirTemp(*dir, "replicator-bench-scale-")
	if err != nil {
		return fmt.Errorf("create a working directory: %w", err)
	}
	defer os.RemoveAll(work)

	res := &scaleResult{Date: time.Now().UTC(), Machine: machineInfo(), Targets: map[string]bool{},
		Settings: scaleSettings{DBs: *dbs, Duration: duration.String(), Settle: settle.String(), SyncInterval: syncInterval.String(),
			Rate: *rate, LoadDuration: loadDuration.String(), GOGC: os.Getenv("GOGC"), GOMEMLIMIT: os.Getenv("GOMEMLIMIT")}}

	// The request count's daemon idles through the idle window too, so
	// its idle requests are counted over the same time.
	var load *loadDaemon
	if *loadDuration > 0 {
		if load, err = startLoadDaemon(ctx, e, filepath.Join(work, "load"), *syncInterval); err != nil {
			return err
		}
		defer load.stop()
	}
	if res.Idle, err = measureIdle(ctx, e, work, *dbs, *duration, *settle, *syncInterval, load, res); err != nil {
		return err
	}
	if self, err := os.Executable(); err == nil {
		if path, args, err := install.LocatePlugin(self, "fs"); err == nil {
			res.Idle.Plugin = strings.Join(append([]string{path}, args...), " ")
		}
	}
	if load != nil {
		before := load.store.Counts()
		start := time.Now()
		commits, err := load.write(ctx, *rate, *loadDuration)
		if err != nil {
			return err
		}
		secs := time.Since(start).Seconds()
		by := load.store.Counts().Sub(before)
		total := by.Total()
		r := res.Requests
		r.Seconds, r.Commits, r.Rate, r.Requests, r.ByOperation = secs, commits, float64(commits)/secs, total, by
		r.PerHour = float64(total) * 3600 / secs
		if err := load.stop(); err != nil {
			return err
		}
		load = nil
	}
	for i, size := range sizes {
		r, err := measureRestore(ctx, e, filepath.Join(work, fmt.Sprintf("restore-%d", i)), size, *restoreTxns, *syncInterval)
		if err != nil {
			return fmt.Errorf("restore measurement at %s: %w", humanize.IBytes(uint64(size)), err)
		}
		res.Restores = append(res.Restores, r)
		if err := os.RemoveAll(filepath.Join(work, fmt.Sprintf("restore-%d", i))); err != nil {
			return err
		}
	}
	res.judge(*rate, *syncInterval)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.print(e.stdout)
	return nil
}

// measureIdle starts the daemon over n new databases and measures it idle.
// It also counts the idle requests of load (which may be nil) over the
// same window.
func measureIdle(ctx context.Context, e *env, work string, n int, duration, settle, syncInterval time.Duration, load *loadDaemon, res *scaleResult) (scaleIdle, error) {
	cfgPath, err := createScaleDBs(ctx, work, n)
	if err != nil {
		return scaleIdle{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return scaleIdle{}, err
	}
	addr, err := freeAddr()
	if err != nil {
		return scaleIdle{}, err
	}
	logPath := filepath.Join(work, "daemon.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return scaleIdle{}, err
	}
	defer logf.Close()
	cmd := exec.Command(self, "replicate", "-config", cfgPath, "-addr", addr, "-sync-interval", syncInterval.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return scaleIdle{}, fmt.Errorf("start the daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			return fmt.Errorf("the daemon did not stop within 2m of SIGTERM")
		}
	}
	defer stop()
	fail := func(err error) (scaleIdle, error) {
		_ = stop()
		return scaleIdle{}, fmt.Errorf("%w\ndaemon log (last lines):\n%s", err, tail(logPath, 20))
	}

	// Ready: every replica holds the database's position.
	base := "http://" + addr
	limit := time.Minute + time.Duration(n)*200*time.Millisecond
	for {
		_, ok, err := allReplicated(ctx, base, n)
		if ok {
			break
		}
		select {
		case err := <-exited:
			return fail(fmt.Errorf("the daemon exited before the replicas were ready: %v", err))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Since(start) > limit {
			return fail(fmt.Errorf("not every replica held its first snapshot within %s (last: %v)", limit, err))
		}
	}
	idle := scaleIdle{ReadySeconds: time.Since(start).Seconds()}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return fail(ctx.Err())
	}

	pid := cmd.Process.Pid
	idle.LoadBefore = loadAvg()
	up0, err := scrapeCounters(base)
	if err != nil {
		return fail(err)
	}
	var req0 storecount.Counts
	if load != nil {
		req0 = load.store.Counts()
	}
	s0, err := sampleTree(pid)
	if err != nil {
		return fail(err)
	}
	// Memory is sampled once a second (from /proc: the daemon does no
	// work for it); CPU and system calls are compared end to end.
	last := s0
	var maxKB int64 = s0.rssKB()
	deadline := s0.at.Add(duration)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fail(fmt.Errorf("the daemon exited during the idle window: %v", err))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(min(time.Second, time.Until(deadline))):
		}
		if last, err = sampleTree(pid); err != nil {
			return fail(err)
		}
		maxKB = max(maxKB, last.rssKB())
	}
	wall := last.at.Sub(s0.at)
	if load != nil {
		total := load.store.Counts().Sub(req0).Total()
		res.Requests = &scaleRequests{IdleSeconds: wall.Seconds(), IdleRequests: total}
	}
	up1, err := scrapeCounters(base)
	if err != nil {
		return fail(err)
	}
	idle.LoadAfter = loadAvg()
	cpu, sys, changed := usage(s0, last, pid)
	daemonCPU, _, _ := usage(procSample{procs: onlyPid(s0, pid)}, procSample{procs: onlyPid(last, pid)}, pid)
	idle.Seconds = wall.Seconds()
	idle.Processes = len(last.procs)
	idle.RSSMB = float64(last.rssKB()) / 1024
	idle.RSSMaxMB = float64(maxKB) / 1024
	idle.DaemonRSSMB = float64(last.rssOf(pid)) / 1024
	idle.AnonMB = float64(last.anonKB()) / 1024
	idle.PSSMB = float64(last.pssKB()) / 1024
	idle.CPUPercent = 100 * cpu.Seconds() / wall.Seconds()
	idle.DaemonCPU = 100 * daemonCPU.Seconds() / wall.Seconds()
	idle.Uploads = up1[uploadsMetric] - up0[uploadsMetric]
	idle.Requests = -1
	if n, ok := up1[requestsMetric]; ok {
		idle.Requests = n - up0[requestsMetric]
	}
	idle.PluginIO = sys
	idle.ProcsChanged = changed
	if err := stop(); err != nil {
		return idle, fmt.Errorf("daemon: %w\ndaemon log (last lines):\n%s", err, tail(logPath, 20))
	}
	return idle, nil
}

func onlyPid(s procSample, pid int) map[procKey]procInfo {
	out := map[procKey]procInfo{}
	for k, p := range s.procs {
		if k.pid == pid {
			out[k] = p
		}
	}
	return out
}

// createScaleDBs creates n small WAL-mode databases under work and a
// config replicating each to a local directory of its own; it returns the
// config's path.
func createScaleDBs(ctx context.Context, work string, n int) (string, error) {
	dbDir, repDir := filepath.Join(work, "dbs"), filepath.Join(work, "replicas")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return "", err
	}
	var cfg strings.Builder
	cfg.WriteString("dbs:\n")
	for i := range n {
		path := filepath.Join(dbDir, fmt.Sprintf("db%05d.db", i))
		db, err := openWAL(path)
		if err != nil {
			return "", err
		}
		_, err = db.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
			WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < 10) INSERT INTO t (v) SELECT 'row ' || x FROM s`)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("create %s: %w", path, err)
		}
		fmt.Fprintf(&cfg, "  - path: %s\n    replicas:\n      - type: file\n        path: %s\n", strconv.Quote(path), strconv.Quote(filepath.Join(repDir, fmt.Sprintf("db%05d", i))))
	}
	cfgPath := filepath.Join(work, "replicator.yml")
	return cfgPath, os.WriteFile(cfgPath, []byte(cfg.String()), 0o644)
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// daemonDatabases asks a running daemon for its databases' positions.
func daemonDatabases(ctx context.Context, base string) ([]dbStatusJSON, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/databases", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var sts []dbStatusJSON
	if err := json.NewDecoder(resp.Body).Decode(&sts); err != nil {
		return nil, fmt.Errorf("GET /databases: %w", err)
	}
	return sts, nil
}

// allReplicated asks the daemon whether each of its n databases has every
// replica at the captured position, and returns what it reported.
func allReplicated(ctx context.Context, base string, n int) ([]dbStatusJSON, bool, error) {
	sts, err := daemonDatabases(ctx, base)
	if err != nil {
		return nil, false, err
	}
	if len(sts) != n {
		return sts, false, fmt.Errorf("the daemon reports %d databases, want %d", len(sts), n)
	}
	for _, st := range sts {
		for _, r := range st.Replicas {
			if st.TxID == 0 || r.Generation != st.Generation || r.TxID != st.TxID {
				return sts, false, fmt.Errorf("%s: replica %s at %s/%d, database at %s/%d", st.DB, r.Name, r.Generation, r.TxID, st.Generation, st.TxID)
			}
		}
	}
	return sts, true, nil
}

// The daemon's counters the idle window compares.
const (
	uploadsMetric  = "replicator_replica_upload_requests_total"
	requestsMetric = "replicator_storage_requests_total"
)

// scrapeCounters sums each of the daemon's counters above over all its
// labels; a counter the daemon does not export is absent from the map
// (one with no sample yet is there, as 0).
func scrapeCounters(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{uploadsMetric, requestsMetric} {
			if strings.HasPrefix(line, "# TYPE "+name+" ") {
				sums[name] += 0
			}
			if !strings.HasPrefix(line, name+"{") {
				continue
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return nil, fmt.Errorf("GET /metrics: %q: %w", line, err)
			}
			sums[name] += v
		}
	}
	return sums, sc.Err()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func (r *scaleResult) judge(rate float64, syncInterval time.Duration) {
	add := func(name string, ok bool) {
		r.Targets[name] = ok
		r.order = append(r.order, name)
	}
	n := r.Settings.DBs
	if lim, ok := targetFor(scaleRSSTargets, n); ok {
		add(fmt.Sprintf("RSS daemon + plugins <= %g MB with %d databases", lim, n), r.Idle.RSSMB <= lim)
	}
	if lim, ok := targetFor(scaleCPUTargets, n); ok {
		add(fmt.Sprintf("idle CPU <= %g %% of a core with %d databases", lim, n), r.Idle.CPUPercent <= lim)
	}
	// Only an exact count gives a verdict: the daemon's request counter,
	// or the in-process count.
	if r.Idle.Requests >= 0 || r.Requests != nil {
		add("no storage request while idle", r.Idle.Uploads == 0 && r.Idle.Requests <= 0 && (r.Requests == nil || r.Requests.IdleRequests == 0))
	}
	if q := r.Requests; q != nil && rate == 50 && syncInterval == time.Second {
		add(fmt.Sprintf("<= %d requests/hour at 50 txn/s, 1s sync interval", targetLoadRequestsPerHour), q.PerHour <= targetLoadRequestsPerHour)
	}
	for _, rs := range r.Restores {
		for i, level := range []string{"full (the default)", "quick", "none"} {
			add(fmt.Sprintf("restore of %s >= %.1f x cp+fsync, -integrity-check %s", humanize.IBytes(uint64(rs.Bytes)), targetRestoreRatio, level), rs.restores()[i].Ratio >= targetRestoreRatio)
		}
	}
	if len(r.Restores) >= 2 {
		lo, hi := r.Restores[0], r.Restores[len(r.Restores)-1]
		bounded := true
		for i, h := range hi.restores() {
			bounded = bounded && h.PeakRSSMB <= targetRestoreMemGrowth*lo.restores()[i].PeakRSSMB
		}
		add(fmt.Sprintf("restore memory bounded: peak at %s <= %.2f x peak at %s", humanize.IBytes(uint64(hi.Bytes)), targetRestoreMemGrowth, humanize.IBytes(uint64(lo.Bytes))), bounded)
	}
}

func (r *scaleResult) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %s, %d CPUs, %s/%s, %s; %s\n", m.CPU, m.Cores, m.OS, m.Arch, m.Go, r.Date.Format(time.RFC3339))
	i := r.Idle
	fmt.Fprintf(w, "\ndaemon over %d idle databases (replicate -config, one local-directory replica each, sync-interval %s):\n", r.Settings.DBs, r.Settings.SyncInterval)
	fmt.Fprintf(w, "  ready after %.1fs; measured over %.1fs after a %s settle; load average %s before, %s after\n", i.ReadySeconds, i.Seconds, r.Settings.Settle, i.LoadBefore, i.LoadAfter)
	fmt.Fprintf(w, "  RSS, daemon + plugins:  %.1f MB at the end (max %.1f MB), %d processes; the daemon alone %.1f MB\n", i.RSSMB, i.RSSMaxMB, i.Processes, i.DaemonRSSMB)
	fmt.Fprintf(w, "                          of which anonymous %.1f MB, the rest file-backed (mostly the executables' own pages); PSS %.1f MB\n", i.AnonMB, i.PSSMB)
	fmt.Fprintf(w, "  CPU, daemon + plugins:  %.3f %% of one core (the daemon alone %.3f %%)\n", i.CPUPercent, i.DaemonCPU)
	fmt.Fprintf(w, "  fs plugin:              %s\n", i.Plugin)
	reqs := "not exported"
	if i.Requests >= 0 {
		reqs = fmt.Sprintf("%.0f", i.Requests)
	}
	fmt.Fprintf(w, "  storage:                %.0f uploads, storage requests %s (/metrics); %d read/write system calls by the plugin processes (runtime wake-ups included)\n", i.Uploads, reqs, i.PluginIO)
	if i.ProcsChanged > 0 {
		fmt.Fprintf(w, "  note: %d processes started or ended during the window; their CPU time is not counted\n", i.ProcsChanged)
	}
	if q := r.Requests; q != nil {
		fmt.Fprintf(w, "\nstorage requests of one database (in-process daemon, every request to the fs plugin counted):\n")
		fmt.Fprintf(w, "  idle for %.1fs:  %d requests\n", q.IdleSeconds, q.IdleRequests)
		if q.Seconds > 0 {
			fmt.Fprintf(w, "  %.1f txn/s for %.1fs (%d commits):  %d requests (put %d, get %d, stat %d, list %d, delete %d) = %.0f per hour\n",
				q.Rate, q.Seconds, q.Commits, q.Requests, q.ByOperation["put"], q.ByOperation["get"], q.ByOperation["stat"], q.ByOperation["list"], q.ByOperation["delete"], q.PerHour)
		}
	}
	if len(r.Restores) > 0 {
		fmt.Fprintf(w, "\nrestore from a local directory (snapshot + transactions), MB = 10^6 bytes; median of %d runs, each after a sync:\n", restoreRuns)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "restore with -integrity-check full (the default), quick and none; ratio is to cp+fsync")
		fmt.Fprintln(tw, "size\ttxns\tobjects\tcp+fsync\tfull\tratio\tpeak RSS\tquick\tratio\tpeak RSS\tnone\tratio\tpeak RSS\t")
		for _, rs := range r.Restores {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f MB/s\t", humanize.IBytes(uint64(rs.Bytes)), rs.Transactions, rs.Objects, rs.Copy.MBs)
			for _, run := range rs.restores() {
				fmt.Fprintf(tw, "%.0f MB/s\t%.2f\t%.1f MB\t", run.MBs, run.Ratio, run.PeakRSSMB)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\ntargets:")
	for _, name := range r.order {
		verdict := "met"
		if !r.Targets[name] {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  %-6s %s\n", verdict, name)
	}
}
