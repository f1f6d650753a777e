package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// The replication scenarios: the second layer of conformance. Where the
// storage tests call a store directly, a scenario runs the real replicator
// executable as a daemon (a child process, configured by a config file)
// against a fresh replica location of the backend, writes to a SQLite
// database in WAL mode as an application would, disturbs the daemon or the
// store (restarts, kill -9, faults, a second daemon, damaged objects) and
// ends with restores that must equal the source. Every scenario is a leaf
// test below ScenarioRoot, so its result lines up with the storage layer's
// in one matrix; a scenario that needs a capability the store does not
// declare is skipped as "disabled:", like a storage test.

// ReplicaConfig is a replica as the daemon's config file gives it.
type ReplicaConfig struct {
	// Type is a first-party backend type ("file", "s3", "gcs", "abs",
	// "sftp"), or "plugin" for a third-party plugin executable.
	Type string
	// Plugin and SHA256 name and pin the executable of a type "plugin"
	// replica.
	Plugin, SHA256 string
	// Settings are the backend's settings.
	Settings map[string]string
}

// ScenarioHarness is what the replication scenarios need from a backend.
type ScenarioHarness interface {
	// Replicator returns the path of the replicator executable that the
	// scenarios run as the daemon and for restores.
	Replicator() string
	// NewReplica returns a fresh, empty replica location for one scenario,
	// and a store opened on that same location: the scenarios read its
	// Capabilities to decide what applies, and use it to look at and to
	// damage objects behind the daemon's back. The scenario closes the
	// store; the harness may register clean-up with t.Cleanup, which runs
	// after that Close.
	NewReplica(ctx context.Context, t *testing.T) (ReplicaConfig, sdk.Storage, error)
}

// scenario is one entry of the list RunScenarios runs.
type scenario struct {
	name string
	opts dbOptions
	fn   func(s *scen)
}

// scenarios in the order of the matrix.
func scenarios() []scenario {
	fast := dbOptions{SyncInterval: 100 * time.Millisecond}
	return []scenario{
		{"Basic", fast, scenarioBasic},
		{"PointInTime", fast, scenarioPointInTime},
		{"Restart", fast, scenarioRestart},
		{"Kill9", fast, scenarioKill9},
		{"CheckpointWhileDown", fast, scenarioCheckpointWhileDown},
		{"Vacuum", fast, scenarioVacuum},
		{"ReplaceDatabase", fast, scenarioReplaceDatabase},
		{"Retention", dbOptions{SyncInterval: 100 * time.Millisecond, SnapshotInterval: 2 * time.Second, Retention: 3 * time.Second}, scenarioRetention},
		{"StorageFaults", fast, scenarioStorageFaults},
		{"PluginKill", fast, scenarioPluginKill},
		{"Fencing", fast, scenarioFencing},
		{"Corruption", fast, scenarioCorruption},
	}
}

// ScenarioNames returns the names of the scenarios, in the order of the
// suite, so that a report can list them in that order although they run in
// parallel.
func ScenarioNames() []string {
	var names []string
	for _, sc := range scenarios() {
		names = append(names, sc.name)
	}
	return names
}

// RunScenarios runs the replication scenarios against replicas made by h,
// each scenario in parallel with the others, with its own database, replica
// location and daemon.
func RunScenarios(t *testing.T, h ScenarioHarness) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.fn(newScen(t, h, sc.opts))
		})
	}
}

// dbOptions are the per-database settings of the daemon's config.
type dbOptions struct {
	SyncInterval, SnapshotInterval, Retention time.Duration
}

// scen is one running scenario: its database, replica and config file.
type scen struct {
	t     *testing.T
	ctx   context.Context
	bin   string
	dir   string
	db    string // the source database (absolute path)
	cfg   string // the daemon's config file
	rc    ReplicaConfig
	st    sdk.Storage
	caps  sdk.Capabilities
	opts  dbOptions
	nrest int // restores so far, for output names
}

func newScen(t *testing.T, h ScenarioHarness, opts dbOptions) *scen {
	t.Helper()
	ctx := t.Context()
	bin := h.Replicator()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("harness: the replicator executable: %v", err)
	}
	rc, st, err := h.NewReplica(ctx, t)
	if err != nil {
		t.Fatalf("harness: NewReplica: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	dir, err := filepath.Abs(t.TempDir())
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	s := &scen{t: t, ctx: ctx, bin: bin, dir: dir, db: filepath.Join(dir, "app.db"), rc: rc, st: st, caps: st.Capabilities(), opts: opts}
	s.cfg = s.writeConfig("daemon.yml", s.db, rc)
	a := s.openApp(s.db)
	defer a.close()
	a.exec("CREATE TABLE rows (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, pad BLOB)")
	return s
}

// writeConfig writes a config file replicating db to rc and returns its
// path. JSON is YAML; "$" is doubled because the loader expands variables.
func (s *scen) writeConfig(name, db string, rc ReplicaConfig) string {
	s.t.Helper()
	replica := map[string]string{"type": rc.Type}
	if rc.Plugin != "" {
		replica["plugin"] = rc.Plugin
	}
	if rc.SHA256 != "" {
		replica["sha256"] = rc.SHA256
	}
	for k, v := range rc.Settings {
		if _, ours := replica[k]; ours || k == "name" {
			s.t.Fatalf("harness: setting %q clashes with a key of the config file's replica entry", k)
		}
		replica[k] = v
	}
	entry := map[string]any{"path": db, "replicas": []any{replica}}
	if s.opts.SyncInterval > 0 {
		entry["sync-interval"] = s.opts.SyncInterval.String()
	}
	if s.opts.SnapshotInterval > 0 {
		entry["snapshot-interval"] = s.opts.SnapshotInterval.String()
	}
	if s.opts.Retention > 0 {
		entry["retention"] = s.opts.Retention.String()
		// Maintenance (compaction, then retention) runs as often as a
		// compaction interval under a minute asks: every second here.
		entry["compaction-interval"] = "1s"
	}
	data, err := json.MarshalIndent(map[string]any{"dbs": []any{entry}}, "", "  ")
	if err != nil {
		s.t.Fatalf("harness: %v", err)
	}
	data = bytes.ReplaceAll(data, []byte("$"), []byte("$$"))
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		s.t.Fatalf("harness: write config: %v", err)
	}
	return path
}

// disabledUnless skips the scenario, as disabled, when the store does not
// declare the capability.
func (s *scen) disabledUnless(declared bool, capability string) {
	s.t.Helper()
	if !declared {
		s.t.Skipf("disabled: store does not declare capability %s", capability)
	}
}

// restored is what "replicator restore" reported.
type restored struct {
	Path       string
	Generation string
	TxID       uint64
}

var restoredLine = regexp.MustCompile(`restored .*: generation (\S+), txid (\d+),`)

// restoreErr runs "replicator restore" of the scenario's database with the
// extra flags (-txid N, -timestamp T, -generation G) into a new file.
func (s *scen) restoreErr(flags ...string) (restored, string, error) {
	s.nrest++
	out := filepath.Join(s.dir, fmt.Sprintf("restore-%02d", s.nrest), "restored.db")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		s.t.Fatalf("harness: %v", err)
	}
	args := append([]string{"restore", "-o", out}, flags...)
	args = append(args, "-config", s.cfg, s.db)
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	log := strings.TrimSpace(stdout.String() + "\n" + stderr.String())
	if err != nil {
		return restored{Path: out}, log, fmt.Errorf("replicator %s: %v\n%s", strings.Join(flags, " "), err, log)
	}
	m := restoredLine.FindStringSubmatch(stdout.String())
	if m == nil {
		return restored{Path: out}, log, fmt.Errorf("replicator restore printed no result line:\n%s", log)
	}
	txid, _ := strconv.ParseUint(m[2], 10, 64)
	return restored{Path: out, Generation: m[1], TxID: txid}, log, nil
}

// restore is restoreErr that fails the scenario on error.
func (s *scen) restore(flags ...string) restored {
	s.t.Helper()
	r, _, err := s.restoreErr(flags...)
	if err != nil {
		s.t.Fatalf("restore: %v", err)
	}
	return r
}

// generation is one row of "replicator generations -json".
type generation struct {
	Generation string `json:"generation"`
	Snapshots  int    `json:"snapshots"`
	Segments   int    `json:"segments"`
	FirstTxID  uint64 `json:"first_txid"`
	LastTxID   uint64 `json:"last_txid"`
}

// generations lists the replica's generations, oldest first.
func (s *scen) generations() []generation {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "generations", "-json", "-config", s.cfg, s.db)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("replicator generations: %v\n%s", err, stderr.String())
	}
	var gens []generation
	if err := json.Unmarshal(out, &gens); err != nil {
		s.t.Fatalf("replicator generations -json printed something else: %v\n%s", err, out)
	}
	return gens
}

// wantGenerations checks the number of generations in the replica and
// returns them.
func (s *scen) wantGenerations(n int, why string) []generation {
	s.t.Helper()
	gens := s.generations()
	if len(gens) != n {
		s.t.Fatalf("the replica holds %d generations, want %d (%s): %+v", len(gens), n, why, gens)
	}
	return gens
}

// cleanEnv is the environment for the processes a scenario starts: the
// test's own, without a fault spec that is meant for one daemon only.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REPLICATOR_FAULTS=") {
			env = append(env, kv)
		}
	}
	return env
}

// eventually polls cond every 50ms until it returns true or timeout
// passes, and reports whether it did.
func (s *scen) eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
