package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sqlitereplicator/replicator/internal/testenv"
)

// proxy is one toxiproxy proxy in front of a test server: disabling it
// makes the server unreachable (connections refused), as an outage does.
type proxy struct {
	api, name, listen string
}

// newProxy creates a proxy to upstream (host:port) on the toxiproxy server
// of TEST_TOXIPROXY_ADDR; it is deleted when the test ends.
func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	api := os.Getenv("TEST_TOXIPROXY_ADDR")
	if api == "" {
		return nil
	}
	p := &proxy{api: "http://" + api, name: fmt.Sprintf("outage-%d-%d", os.Getpid(), time.Now().UnixNano())}
	var created struct{ Listen string }
	p.call(t, "POST", "/proxies", map[string]any{"name": p.name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true}, &created)
	t.Cleanup(func() { p.call(t, "DELETE", "/proxies/"+p.name, nil, nil) })
	p.listen = created.Listen
	return p
}

func (p *proxy) setEnabled(t *testing.T, on bool) {
	t.Helper()
	p.call(t, "POST", "/proxies/"+p.name, map[string]any{"enabled": on}, nil)
}

func (p *proxy) call(t *testing.T, method, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, p.api+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("toxiproxy %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("toxiproxy %s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("toxiproxy %s %s: %v", method, path, err)
		}
	}
}

// pluginPids returns the plugin processes this test process started (the
// first-party plugins are this binary re-executed as "plugin serve NAME").
func pluginPids(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	me := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at ')'.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[0] == "Z" || f[1] != strconv.Itoa(me) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(cmd, []byte("plugin\x00serve\x00")) {
			out = append(out, pid)
		}
	}
	return out
}

// daemonRig is the replicate command running in this process over a
// config file, with application writers committing to each database.
type daemonRig struct {
	cfgPath string
	addr    string
	dbs     []string
	cancel  context.CancelFunc
	done    chan error
	logs    *syncBuffer

	mu      sync.Mutex
	commits [][]time.Time // per database: when row i+1 was committed
	stopW   chan struct{}
	wg      sync.WaitGroup
}

func loopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDaemon writes a config for the databases with replicas (YAML lines
// for each database's replicas: list, %d is the database's index) and
// runs the replicate command.
func startDaemon(t *testing.T, ndb int, replicas func(i int) string, extra string) *daemonRig {
	t.Helper()
	dir := t.TempDir()
	rig := &daemonRig{addr: loopbackAddr(t), logs: &syncBuffer{}, stopW: make(chan struct{}), done: make(chan error, 1)}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "defaults:\n  sync-interval: 50ms\n%sdbs:\n", extra)
	for i := range ndb {
		path := filepath.Join(dir, fmt.Sprintf("app%d.db", i))
		app, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB)"); err != nil {
			t.Fatal(err)
		}
		app.Close()
		rig.dbs = append(rig.dbs, path)
		fmt.Fprintf(&cfg, "  - path: %s\n    replicas:\n%s", path, replicas(i))
	}
	rig.commits = make([][]time.Time, ndb)
	rig.cfgPath = filepath.Join(dir, "replicator.yml")
	if err := os.WriteFile(rig.cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{stdout: rig.logs, stderr: rig.logs, log: slog.New(slog.NewTextHandler(rig.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	ctx, cancel := context.WithCancel(context.Background())
	rig.cancel = cancel
	go func() { rig.done <- runReplicate(ctx, e, []string{"-config", rig.cfgPath, "-addr", rig.addr}) }()
	t.Cleanup(func() {
		rig.stopWriters()
		cancel()
		<-rig.done
		if t.Failed() {
			t.Logf("daemon log:\n%s", rig.logs.String())
		}
	})
	rig.waitHealth(t, 200, "", 30*time.Second)
	return rig
}

// startWriters commits a row to each database every few milliseconds until
// stopWriters, recording when each was committed.
func (rig *daemonRig) startWriters(t *testing.T) {
	for i, path := range rig.dbs {
		app, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		app.SetMaxOpenConns(1)
		rig.wg.Add(1)
		go func() {
			defer rig.wg.Done()
			defer app.Close()
			for {
				select {
				case <-rig.stopW:
					return
				case <-time.After(3 * time.Millisecond):
				}
				if _, err := app.Exec("INSERT INTO t (pad) VALUES (randomblob(300))"); err != nil {
					t.Errorf("commit to %s: %v", path, err)
					return
				}
				rig.mu.Lock()
				rig.commits[i] = append(rig.commits[i], time.Now())
				rig.mu.Unlock()
			}
		}()
	}
}

func (rig *daemonRig) stopWriters() {
	select {
	case <-rig.stopW:
	default:
		close(rig.stopW)
	}
	rig.wg.Wait()
}

// committed returns how many rows database i had committed.
func (rig *daemonRig) committed(i int) int {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return len(rig.commits[i])
}

func (rig *daemonRig) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + rig.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHealth waits until /healthz answers code with a body containing
// want, and returns the body.
func (rig *daemonRig) waitHealth(t *testing.T, code int, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, body := rig.get(t, "/healthz")
		if c == code && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz is %d %q after %s, want %d with %q", c, body, timeout, code, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric sums the samples of a metric whose labels contain all of labels.
func (rig *daemonRig) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	_, body := rig.get(t, "/metrics")
	var sum float64
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		ok := true
		for _, want := range labels {
			ok = ok && strings.Contains(l, want)
		}
		if i := strings.LastIndexByte(l, ' '); ok && i > 0 {
			v, _ := strconv.ParseFloat(l[i+1:], 64)
			sum += v
		}
	}
	return sum
}

// stop ends the daemon (its final sync included) and fails on its error.
func (rig *daemonRig) stop(t *testing.T) {
	t.Helper()
	rig.stopWriters()
	rig.cancel()
	err := <-rig.done
	rig.done <- err // for the clean-up
	if err != nil {
		t.Fatalf("replicate: %v", err)
	}
}

// checkRestores restores every database from each replica: at the latest
// position it must equal the database; at points in time it must be a
// committed prefix (no hole) holding no row committed after the time, and
// later times must hold no fewer rows. (How many it holds depends on where
// uploads were merged: a time inside a merged segment restores the position
// before it, and uploads delayed by an outage go out merged.) A replica in
// gappy may refuse a time inside its re-base gap, naming the gap.
func (rig *daemonRig) checkRestores(t *testing.T, replicas []string, gappy map[string]bool) {
	t.Helper()
	for i, path := range rig.dbs {
		want := sha3sum(t, path)
		rig.mu.Lock()
		times := append([]time.Time(nil), rig.commits[i]...)
		rig.mu.Unlock()
		for _, name := range replicas {
			out := filepath.Join(t.TempDir(), "latest.db")
			if code, _, stderr := runCLI(t, "restore", "-config", rig.cfgPath, "-replica", name, "-o", out, path); code != 0 {
				t.Fatalf("restore %s from %s: exit %d: %s", path, name, code, stderr)
			}
			if got := sha3sum(t, out); got != want {
				t.Fatalf("restore %s from %s differs from the database", path, name)
			}
			prev := 0
			for _, frac := range []int{20, 50, 80, 100} {
				ts := times[len(times)*frac/100-1]
				out := filepath.Join(t.TempDir(), fmt.Sprintf("at%d.db", frac))
				code, _, stderr := runCLI(t, "restore", "-config", rig.cfgPath, "-replica", name, "-o", out,
					"-timestamp", ts.UTC().Format(time.RFC3339Nano), path)
				if code != 0 && gappy[name] && strings.Contains(stderr, "gap") {
					t.Logf("%s at %s falls in the gap of %s: %s", path, ts, name, strings.TrimSpace(stderr))
					continue
				}
				if code != 0 {
					t.Fatalf("restore %s from %s at %s: exit %d: %s", path, name, ts, code, stderr)
				}
				n := rowsPrefix(t, out)
				upper := 0
				for j, c := range times {
					if !c.After(ts) {
						upper = j + 1
					}
				}
				if n > upper || n < prev {
					t.Fatalf("restore %s from %s at %s holds %d rows: %d were committed by then, and an earlier time restored %d", path, name, ts, n, upper, prev)
				}
				prev = n
			}
		}
	}
}

// rowsPrefix checks a restored database (integrity, rows 1..n without a
// hole) and returns n.
func rowsPrefix(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	var n, maxID int
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity %q %v", path, ok, err)
	}
	if err := db.QueryRow("SELECT count(*), coalesce(max(id), 0) FROM t").Scan(&n, &maxID); err != nil {
		t.Fatal(err)
	}
	if n != maxID {
		t.Fatalf("%s: %d rows, max id %d: not a committed prefix", path, n, maxID)
	}
	return n
}

var attemptRE = regexp.MustCompile(`restarting: attempt (\d+)`)

// TestDaemonPluginKillAndStorageOutage is the supervision test of the
// daemon: three databases with two replicas each (a directory, and S3
// through a fault proxy when the test servers run). Every plugin process
// is SIGKILLed again and again: the restarts back off (visible in
// /healthz) and replication resumes. Then S3 becomes unreachable: the
// application's commits go on at their pace, /healthz and the metrics show
// the lagging replica, and when S3 returns it catches up. Every database
// restores from every replica at the latest position and at points in
// time.
func TestDaemonPluginKillAndStorageOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("long: kills plugins and waits out their backoff")
	}
	var s3Proxy *proxy
	s3 := testenv.Backends(t)["s3"]
	if s3.Name != "" {
		u, err := url.Parse(s3.Settings["endpoint"])
		if err != nil {
			t.Fatal(err)
		}
		if s3Proxy = newProxy(t, u.Host); s3Proxy == nil && os.Getenv("CI") != "" {
			t.Fatal("TEST_TOXIPROXY_ADDR is not set: CI must run the test servers (scripts/test-servers.sh)")
		}
	}
	names := []string{"file"}
	if s3Proxy != nil {
		names = append(names, "s3")
	} else {
		t.Log("no S3 test server or toxiproxy: only the file replica, and no storage outage")
	}
	repRoot := t.TempDir()
	rig := startDaemon(t, 3, func(i int) string {
		s := fmt.Sprintf("      - name: file\n        type: file\n        path: %s\n", filepath.Join(repRoot, fmt.Sprint(i)))
		if s3Proxy != nil {
			s += fmt.Sprintf("      - name: s3\n        type: s3\n        endpoint: http://%s\n        bucket: %s\n        path: %s/%d\n        region: %s\n        access-key-id: %s\n        secret-access-key: %s\n",
				s3Proxy.listen, s3.Settings["bucket"], s3.Settings["path"], i, s3.Settings["region"], s3.Settings["access-key-id"], s3.Settings["secret-access-key"])
		}
		return s
	}, "")
	rig.startWriters(t)
	time.Sleep(300 * time.Millisecond)

	// kill -9 every plugin, again as soon as it is back: the restarts
	// back off, and /healthz says so.
	maxAttempt := 0
	const rounds = 6
	kills := 0
	for round := range rounds {
		victims := pluginPids(t)
		if len(victims) == 0 {
			t.Fatalf("round %d: no plugin process to kill", round)
		}
		before := rig.metric(t, "replicator_plugin_restarts_total")
		for _, pid := range victims {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		kills += len(victims)
		// Until every plugin killed has been started again (killing one
		// mid-start would only count as one more failed attempt).
		deadline := time.Now().Add(30 * time.Second)
		for rig.metric(t, "replicator_plugin_restarts_total") < before+float64(len(victims)) {
			_, body := rig.get(t, "/healthz")
			for _, m := range attemptRE.FindAllStringSubmatch(body, -1) {
				n, _ := strconv.Atoi(m[1])
				maxAttempt = max(maxAttempt, n)
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: plugins %v not all started again after 30s", round, victims)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if now := pluginPids(t); overlaps(now, victims) {
			t.Fatalf("round %d: killed plugins %v still listed: %v", round, victims, now)
		}
	}
	if maxAttempt < 3 {
		t.Errorf("/healthz never showed a restart past attempt %d: no backoff seen", maxAttempt)
	}
	if n := rig.metric(t, "replicator_plugin_restarts_total"); n < float64(kills) {
		t.Errorf("replicator_plugin_restarts_total = %v after %d kills", n, kills)
	}
	rig.waitHealth(t, 200, "ok", 60*time.Second)

	if s3Proxy != nil {
		// S3 unreachable: commits go on at their pace, health and
		// metrics show the lagging replica.
		before := rig.committed(0)
		time.Sleep(time.Second)
		rate := rig.committed(0) - before
		s3Proxy.setEnabled(t, false)
		body := rig.waitHealth(t, 503, "replica s3 of", 30*time.Second)
		t.Logf("during the outage: %s", body)
		before = rig.committed(0)
		time.Sleep(time.Second)
		if during := rig.committed(0) - before; during < rate/3 {
			t.Errorf("%d commits in a second during the outage, %d before it", during, rate)
		}
		if lag := rig.metric(t, "replicator_replica_lag_seconds", `replica="s3"`); lag <= 0 {
			t.Errorf("s3 lag %v during the outage", lag)
		}
		if lag := rig.metric(t, "replicator_replica_lag_seconds", `replica="file"`); lag > 5 {
			t.Errorf("file replica lag %v during the S3 outage", lag)
		}
		s3Proxy.setEnabled(t, true)
		rig.waitHealth(t, 200, "ok", 90*time.Second)
	}
	rig.stop(t)
	rig.checkRestores(t, names, nil)
}

func overlaps(a, b []int) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}
