package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// appDB is a database an application writes: table t with n rows.
type appDB struct {
	t    *testing.T
	path string
	db   *sql.DB
	n    int
}

func newAppDB(t *testing.T, path string) *appDB {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	return &appDB{t: t, path: path, db: db}
}

func (a *appDB) insert(k int) {
	a.t.Helper()
	for range k {
		a.n++
		if _, err := a.db.Exec("INSERT INTO t (v) VALUES (?)", fmt.Sprintf("row %d of %s", a.n, filepath.Base(a.path))); err != nil {
			a.t.Fatal(err)
		}
	}
}

// daemonProc is a replicator daemon running as a child process.
type daemonProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	log  *syncBuffer
}

func startDaemonProc(t *testing.T, bin, addr string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{t: t, addr: addr, log: &syncBuffer{}}
	d.cmd = exec.Command(bin, append([]string{"replicate"}, args...)...)
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log.String())
		}
	})
	return d
}

func (d *daemonProc) get(path string) (int, string) {
	resp, err := http.Get("http://" + d.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// databases returns each database's replicas' txids, from /databases.
func (d *daemonProc) databases() map[string]map[string]uint64 {
	code, body := d.get("/databases")
	if code != http.StatusOK {
		return nil
	}
	var sts []dbStatusJSON
	if err := json.Unmarshal([]byte(body), &sts); err != nil {
		d.t.Fatalf("/databases: %v: %s", err, body)
	}
	out := map[string]map[string]uint64{}
	for _, st := range sts {
		reps := map[string]uint64{"": st.TxID}
		for _, r := range st.Replicas {
			if r.Generation == st.Generation {
				reps[r.Name] = r.TxID
			}
		}
		out[st.DB] = reps
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func (d *daemonProc) waitFor(what string, timeout time.Duration, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			_, dbs := d.get("/databases")
			d.t.Fatalf("timed out after %s waiting for %s; /databases:\n%s", timeout, what, dbs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSynced waits until every replica of each database holds the
// database's latest captured txid, and returns those txids.
func (d *daemonProc) waitSynced(dbs ...string) map[string]uint64 {
	d.t.Helper()
	return d.waitTxIDs(dbs, 0)
}

// waitTxID waits until every replica of db holds txid.
func (d *daemonProc) waitTxID(db string, txid uint64) {
	d.t.Helper()
	d.waitTxIDs([]string{db}, txid)
}

func (d *daemonProc) waitTxIDs(dbs []string, txid uint64) map[string]uint64 {
	d.t.Helper()
	out := map[string]uint64{}
	what := "replicas to catch up with " + strings.Join(dbs, ", ")
	if txid != 0 {
		what += fmt.Sprintf(" at txid %d", txid)
	}
	d.waitFor(what, 30*time.Second, func() bool {
		all := d.databases()
		for _, db := range dbs {
			reps, ok := all[db]
			if !ok || len(reps) < 2 || (txid != 0 && reps[""] != txid) {
				return false
			}
			for _, txid := range reps {
				if txid != reps[""] {
					return false
				}
			}
			out[db] = reps[""]
		}
		return true
	})
	return out
}

func (d *daemonProc) stop() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		d.t.Fatalf("daemon exit after SIGTERM: %v", err)
	}
}

// children lists the daemon's child processes (its plugins).
func (d *daemonProc) children() []int {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		d.t.Skipf("cannot list processes: %v", err)
	}
	var pids []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ")".
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(d.cmd.Process.Pid) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// restoreRows restores url (at txid, when not zero) and counts its rows.
func restoreRows(t *testing.T, bin, url string, txid uint64) int {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.db")
	args := []string{"restore", "-o", out}
	if txid != 0 {
		args = append(args, "-txid", strconv.FormatUint(txid, 10))
	}
	if b, err := exec.Command(bin, append(args, url)...).CombinedOutput(); err != nil {
		t.Fatalf("restore %s at txid %d: %v\n%s", url, txid, err, b)
	}
	return followRows(t, out)
}

// TestDaemonConfigReload runs one daemon over a config with three
// databases (two replicas each), a dir entry and a follower: replicas of a
// backend share one plugin process, a database created in the directory
// is picked up, SIGHUP adds, changes and removes entries without
// restarting the others, and every database restores at several points.
func TestDaemonConfigReload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	bin := replicatorBin(t)
	dir := t.TempDir()
	addr := loopbackAddr(t)
	apps := map[string]*appDB{}
	for _, n := range []string{"a", "b", "c", "d"} {
		apps[n] = newAppDB(t, filepath.Join(dir, n+".db"))
		apps[n].insert(3)
	}
	tenants := filepath.Join(dir, "tenants")
	apps["t1"] = newAppDB(t, filepath.Join(tenants, "t1.db"))
	apps["t1"].insert(2)
	rep := func(db string) string { return "file://" + filepath.Join(dir, "replicas", db) }
	second := func(db string) string { return "file://" + filepath.Join(dir, "second", db) }
	entry := func(n, extra string) string {
		return fmt.Sprintf("  - path: %s\n%s    replicas:\n      - {name: one, url: %q}\n      - {name: two, url: %q}\n",
			apps[n].path, extra, rep(n), second(n))
	}
	follower := filepath.Join(dir, "follower.db")
	write := func(body string) string {
		p := filepath.Join(dir, "replicator.yml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := func(level string) string {
		return fmt.Sprintf("addr: %s\nlog-level: %s\ndefaults:\n  sync-interval: 50ms\n  compaction-interval: 1s\n", addr, level)
	}
	tail := fmt.Sprintf("  - dir: %s\n    replicas: [{name: one, url: %q}, {name: two, url: %q}]\nfollow:\n  - path: %s\n    url: %q\n    interval: 100ms\n",
		tenants, rep("tenants"), second("tenants"), follower, rep("a"))
	cfgPath := write(head("info") + "dbs:\n" + entry("a", "") + entry("b", "") + entry("c", "") + tail)

	d := startDaemonProc(t, bin, addr, "-config", cfgPath)
	t1 := apps["t1"].path
	pos := d.waitSynced(apps["a"].path, apps["b"].path, apps["c"].path, t1)

	// Seven replicas of one backend, one follower: one fs plugin process.
	if kids := d.children(); len(kids) != 1 {
		t.Errorf("the daemon runs %d plugin processes (%v), want 1 shared by every file replica", len(kids), kids)
	}

	// A database created in the directory is picked up.
	apps["t2"] = newAppDB(t, filepath.Join(tenants, "eu", "t2.db"))
	apps["t2"].insert(1)
	apps["t3"] = newAppDB(t, filepath.Join(tenants, "t3.db"))
	apps["t3"].insert(4)
	d.waitSynced(apps["t3"].path)
	if _, ok := d.databases()[apps["t2"].path]; ok {
		t.Errorf("%s in a subdirectory was picked up without recursive: true", apps["t2"].path)
	}

	// A second point in time for a.
	// Rows written before the daemon started are txid 1; each insert
	// after is one more.
	apps["a"].insert(5)
	posA2 := uint64(1 + 5)
	d.waitTxID(apps["a"].path, posA2)
	d.waitFor("the follower to apply a's rows", 20*time.Second, func() bool { return followRows(t, follower) == apps["a"].n })
	_, metrics := d.get("/metrics")
	for _, want := range []string{"replicator_follow_txid", "replicator_follow_lag_seconds", `replicator_databases 5`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Reload: c removed, b's sync-interval changed, d added, tenants
	// recursive; a untouched.
	write(head("debug") + "dbs:\n" + entry("a", "") + entry("b", "    sync-interval: 20ms\n") + entry("d", "") +
		strings.Replace(tail, "    replicas:", "    recursive: true\n    replicas:", 1))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitSynced(apps["d"].path, apps["t2"].path)
	d.waitFor("c to stop", 10*time.Second, func() bool { _, ok := d.databases()[apps["c"].path]; return !ok })
	log := d.log.String()
	for _, want := range []string{"SIGHUP: reloading", `"stopping database" db=` + apps["b"].path + ` reason="settings changed"`,
		`"stopping database" db=` + apps["c"].path + ` reason="no longer in the configuration"`} {
		if !strings.Contains(log, want) {
			t.Errorf("daemon log lacks %q", want)
		}
	}
	if strings.Contains(log, `"stopping database" db=`+apps["a"].path) {
		t.Errorf("reload restarted %s, whose settings did not change", apps["a"].path)
	}
	// A config with an error is refused and the daemon keeps running.
	write("dbs: [{path: " + apps["a"].path + ", colour: red}]\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitFor("the bad reload to be logged", 10*time.Second, func() bool {
		return strings.Contains(d.log.String(), "keeping the running configuration")
	})
	apps["a"].insert(2)
	apps["b"].insert(2)
	d.waitTxID(apps["a"].path, posA2+2)
	d.waitTxID(apps["b"].path, 1+2)
	d.stop()

	// Every database restores from both replicas; a at three points.
	for _, n := range []string{"a", "b", "d", "t1", "t3"} {
		rel := n
		if strings.HasPrefix(n, "t") {
			rel = "tenants/" + n + ".db"
		}
		for _, url := range []string{rep(rel), second(rel)} {
			if got := restoreRows(t, bin, url, 0); got != apps[n].n {
				t.Errorf("restore %s: %d rows, want %d", url, got, apps[n].n)
			}
		}
	}
	for txid, want := range map[uint64]int{pos[apps["a"].path]: 3, posA2: 8, posA2 + 2: 10} {
		if got := restoreRows(t, bin, second("a"), txid); got != want {
			t.Errorf("restore a at txid %d: %d rows, want %d", txid, got, want)
		}
	}
	if got := restoreRows(t, bin, rep("tenants/eu/t2.db"), 0); got != 1 {
		t.Errorf("restore of t2 (picked up after reload): %d rows, want 1", got)
	}
}

// TestDaemonEncryptedConfig: a database's encryption: setting encrypts
// what the daemon uploads, a follow entry's opens it, and restore with
// -config finds the key where the file says; without it, restore fails.
func TestDaemonEncryptedConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	bin := replicatorBin(t)
	dir := t.TempDir()
	addr := loopbackAddr(t)
	keyPath := filepath.Join(dir, "app.key")
	if out, err := exec.Command(bin, "keygen", "-o", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	app := newAppDB(t, filepath.Join(dir, "app.db"))
	const marker = "plaintext-marker-7f3a"
	if _, err := app.db.Exec("INSERT INTO t (v) VALUES (?)", marker); err != nil {
		t.Fatal(err)
	}
	app.n++
	repDir := filepath.Join(dir, "replica")
	follower := filepath.Join(dir, "follower.db")
	cfgPath := filepath.Join(dir, "replicator.yml")
	cfg := fmt.Sprintf("addr: %s\ndbs:\n  - path: %s\n    sync-interval: 50ms\n    encryption: {key-file: %s}\n    replicas: [{url: %q}]\n"+
		"follow:\n  - path: %s\n    url: %q\n    interval: 100ms\n    encryption: {key-file: %s}\n",
		addr, app.path, keyPath, "file://"+repDir, follower, "file://"+repDir, keyPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonProc(t, bin, addr, "-config", cfgPath)
	d.waitTxID(app.path, 1) // what was written before the start is txid 1
	app.insert(4)
	d.waitTxID(app.path, 1+4)
	d.waitFor("the follower to apply", 20*time.Second, func() bool { return followRows(t, follower) == app.n })
	d.stop()

	err := filepath.WalkDir(repDir, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), marker) {
			t.Errorf("%s holds the database's plaintext", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "restored.db")
	b, err := exec.Command(bin, "restore", "-o", out, "file://"+repDir).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "-key-file") {
		t.Errorf("restore without the key: %v\n%s", err, b)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed restore left a file at -o")
	}
	if b, err := exec.Command(bin, "restore", "-config", cfgPath, "-o", out, app.path).CombinedOutput(); err != nil {
		t.Fatalf("restore with -config: %v\n%s", err, b)
	}
	if got := followRows(t, out); got != app.n {
		t.Errorf("restored %d rows, want %d", got, app.n)
	}
}

// TestDaemonFollowerHealth: a follower that cannot reach a state of its
// replica makes /healthz degraded, naming it; one that follows is fine.
func TestDaemonFollowerHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	bin := replicatorBin(t)
	dir := t.TempDir()
	addr := loopbackAddr(t)
	app := newAppDB(t, filepath.Join(dir, "app.db"))
	app.insert(2)
	rep := "file://" + filepath.Join(dir, "replica")
	cfg := fmt.Sprintf("addr: %s\ndbs:\n  - path: %s\n    replicas: [{url: %q}]\nfollow:\n"+
		"  - {path: %s, url: %q, interval: 100ms}\n  - {path: %s, url: %q, interval: 100ms}\n",
		addr, app.path, rep, filepath.Join(dir, "good.db"), rep, filepath.Join(dir, "stuck.db"), "file://"+filepath.Join(dir, "empty"))
	cfgPath := filepath.Join(dir, "replicator.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonProc(t, bin, addr, "-config", cfgPath)
	var body string
	d.waitFor("/healthz to report the stuck follower", 20*time.Second, func() bool {
		var code int
		code, body = d.get("/healthz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "follower "+filepath.Join(dir, "stuck.db"))
	})
	if strings.Contains(body, "good.db") {
		t.Errorf("/healthz reports the follower that follows: %s", body)
	}
	d.waitFor("the good follower", 20*time.Second, func() bool { return followRows(t, filepath.Join(dir, "good.db")) == app.n })
	d.stop()
}
