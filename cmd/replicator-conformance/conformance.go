package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/internal/cli"
	"github.com/sqlitereplicator/replicator/internal/install"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

// The suite runs against backends through their plugin processes exactly
// as replication uses them. It needs a real *testing.T, which only the
// testing package's main loop makes, so each backend is tested in a child:
// this executable re-executed as "replicator-conformance -child" with the
// backend in conformanceSpecEnv. The child runs the suite with
// conformance.RunLayersMain and the parent reads its output with
// conformance.ParseOutput.

const conformanceSpecEnv = "REPLICATOR_CONFORMANCE_SPEC"

// conformanceSpec is one backend to test, as passed to the child.
type conformanceSpec struct {
	// Name labels the backend in the results ("fs", "s3", "my-plugin").
	Name string `json:"name"`
	// Builtin is the first-party plugin name; otherwise Path (and SHA256)
	// name a third-party plugin executable.
	Builtin  string            `json:"builtin,omitempty"`
	Path     string            `json:"path,omitempty"`
	SHA256   string            `json:"sha256,omitempty"`
	Settings map[string]string `json:"settings"`
	// PathSetting is the setting that each test's store gets a fresh
	// sub-path of ("" keeps the settings as they are).
	PathSetting string        `json:"path_setting"`
	RunID       string        `json:"run_id"`
	Run         string        `json:"run,omitempty"`
	Timeout     time.Duration `json:"timeout"`
	Keep        bool          `json:"keep,omitempty"`
	// Layers are the layers to run (layerStorage, layerReplication).
	Layers []string `json:"layers"`
	// Replicator is the executable the replication scenarios run as the
	// daemon.
	Replicator string `json:"replicator,omitempty"`
}

// settingFlags collects repeated -setting k=v flags.
type settingFlags map[string]string

func (s settingFlags) String() string { return "" }

func (s settingFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	if _, dup := s[k]; dup {
		return fmt.Errorf("setting %q given twice", k)
	}
	s[k] = val
	return nil
}

// builtinForType maps a backend type as users write it (in a config file or
// a URL scheme) to the first-party plugin that implements it.
func builtinForType(typ string) (string, error) {
	name := strings.ToLower(typ)
	switch name {
	case "file":
		name = "fs"
	case "gs":
		name = "gcs"
	case "abs":
		name = "azure"
	}
	if !install.IsPlugin(name) {
		return "", cli.Usagef("backend type %q is not a first-party backend (%s); for a third-party plugin use -plugin PATH", typ, strings.Join(install.PluginNames(), ", "))
	}
	return name, nil
}

func runConformance(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "-child" {
		return runConformanceChild(e)
	}
	fs := cli.NewFlags(e.stderr, "replicator conformance", "[flags] [REPLICA-URL...]\n\n"+
		"Runs the storage contract suite and the replication scenarios (the real\n"+
		"daemon replicating and restoring through the backend, with restarts,\n"+
		"kill -9, faults, fencing, damaged objects) against each backend given: a replica URL\n"+
		"argument, -type TYPE with -setting flags, or a third-party plugin with\n"+
		"-plugin PATH [-sha256 HEX] and -setting flags. Each test gets a fresh store:\n"+
		"the -path-setting setting (default \"path\") is extended with a new sub-path\n"+
		"per test, and the test's objects are deleted afterwards. Exits 1 when any\n"+
		"test fails or errors (or, with -strict, is disabled).\n\nFlags:")
	typ := fs.String("type", "", "first-party backend `TYPE` (file, s3, gcs, abs)")
	pluginPath := fs.String("plugin", "", "third-party plugin executable `PATH`")
	pin := fs.String("sha256", "", "with -plugin, the executable's expected sha256 (`HEX`)")
	settings := settingFlags{}
	fs.Var(settings, "setting", "backend setting `KEY=VALUE` for -type or -plugin (repeatable)")
	pathSetting := fs.String("path-setting", "path", "the setting `NAME` that locates a store; each test gets a fresh sub-path of it (\"\" to use the settings as they are)")
	runPat := fs.String("run", "", "run only the tests matching `REGEXP` (like go test -run, below the suite: \"PutGet\", \"Keys/Awkward\")")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up on a backend after this long")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a table")
	junit := fs.String("junit", "", "also write the results as JUnit XML to `FILE`")
	strict := fs.Bool("strict", false, "count disabled tests (capabilities the backend lacks) as failures")
	keep := fs.Bool("keep", false, "keep the objects the tests wrote")
	verbose := fs.Bool("v", false, "print the full output of failing tests")
	layer := fs.String("layer", "all", "the layers to run: `all`, storage (the storage contract) or replication (the daemon scenarios)")
	replicator := fs.String("replicator", "", "the replicator executable the replication scenarios run as the daemon, which also serves the compiled-in fs plugin (default: the one that ran this, else the one beside this executable, else on PATH)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	layers, err := parseLayers(*layer)
	if err != nil {
		return err
	}
	runID := make([]byte, 4)
	_, _ = rand.Read(runID)
	base := conformanceSpec{PathSetting: *pathSetting, RunID: hex.EncodeToString(runID), Run: *runPat, Timeout: *timeout, Keep: *keep, Layers: layers}
	var specs []conformanceSpec
	switch {
	case *typ != "" && *pluginPath != "":
		return cli.Usagef("give -type or -plugin, not both")
	case *pin != "" && *pluginPath == "":
		return cli.Usagef("-sha256 pins a -plugin executable")
	case len(settings) > 0 && *typ == "" && *pluginPath == "":
		return cli.Usagef("-setting applies to -type or -plugin; a replica URL carries its settings in its query")
	case *typ != "":
		name, err := builtinForType(*typ)
		if err != nil {
			return err
		}
		s := base
		s.Name, s.Builtin, s.Settings = name, name, settings
		specs = append(specs, s)
	case *pluginPath != "":
		abs, err := filepath.Abs(*pluginPath)
		if err != nil {
			return err
		}
		s := base
		s.Name, s.Path, s.SHA256, s.Settings = filepath.Base(abs), abs, *pin, settings
		specs = append(specs, s)
	}
	for _, arg := range fs.Args() {
		if !config.IsURL(arg) {
			return cli.Usagef("%q is not a replica URL", arg)
		}
		rc, err := config.ParseURL(arg)
		if err != nil {
			return cli.UsageError{Msg: err.Error()}
		}
		name, err := builtinForType(rc.Type)
		if err != nil {
			return err
		}
		s := base
		s.Name, s.Builtin, s.Settings = name, name, rc.Settings
		specs = append(specs, s)
	}
	if len(specs) == 0 {
		return cli.Usagef("nothing to test: give -type TYPE, -plugin PATH or a replica URL")
	}
	// The scenarios run the replicator executable, and the first-party
	// plugins are found from it; only the storage layer of a third-party
	// plugin runs without it.
	if slices.Contains(layers, layerReplication) || slices.ContainsFunc(specs, func(s conformanceSpec) bool { return s.Builtin != "" }) {
		path, err := findReplicator(*replicator)
		if err != nil {
			return err
		}
		for i := range specs {
			specs[i].Replicator = path
		}
	}
	// Two columns of one name (two s3 URLs) get numbered.
	seen := map[string]int{}
	for i := range specs {
		if n := seen[specs[i].Name]; n > 0 {
			specs[i].Name = fmt.Sprintf("%s#%d", specs[i].Name, n+1)
		}
		seen[specs[i].Name]++
	}

	var runs []conformanceRun
	for _, s := range specs {
		r, err := runConformanceSpec(ctx, e, s)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	rep := newConformanceReport(runs, *strict)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.writeText(e.stdout, *verbose); err != nil {
		return err
	}
	if *junit != "" {
		if err := rep.writeJUnit(*junit); err != nil {
			return err
		}
	}
	if !rep.OK {
		var parts []string
		for _, b := range rep.Backends {
			if !b.OK {
				parts = append(parts, fmt.Sprintf("%s (%s)", b.Name, b.Summary))
			}
		}
		return fmt.Errorf("conformance failed: %s", strings.Join(parts, "; "))
	}
	return nil
}

// findReplicator returns the replicator executable of a run: flagValue (the
// -replicator flag), else the one that ran this executable as "replicator
// conformance" (install.ReplicatorEnv), else the one beside this executable,
// else the one on PATH.
func findReplicator(flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if p := os.Getenv(install.ReplicatorEnv); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this executable: %w", err)
	}
	p, err := install.Find(self, install.Replicator)
	if err != nil {
		return "", fmt.Errorf("find the replicator executable to test with: %w; give -replicator PATH", err)
	}
	return p, nil
}

// conformanceRun is the outcome of the suite against one backend.
type conformanceRun struct {
	spec    conformanceSpec
	results []conformance.Result
}

// runConformanceSpec checks that the backend's plugin starts, then runs the
// suite against it in a child process, printing a line per test as it ends.
func runConformanceSpec(ctx context.Context, e *env, s conformanceSpec) (conformanceRun, error) {
	p, err := conformancePlugin(e, s)
	if err != nil {
		return conformanceRun{}, err
	}
	v, err := p.Start(ctx)
	p.Close()
	if err != nil {
		return conformanceRun{}, fmt.Errorf("%s: %w", s.Name, err)
	}
	fmt.Fprintf(e.stderr, "%s: plugin started, protocol %d; running the %s\n", s.Name, v, describeLayers(s.Layers))

	self, err := os.Executable()
	if err != nil {
		return conformanceRun{}, fmt.Errorf("find this executable: %w", err)
	}
	spec, err := json.Marshal(s)
	if err != nil {
		return conformanceRun{}, err
	}
	cmd := exec.CommandContext(ctx, self, "-child")
	cmd.Env = append(os.Environ(), conformanceSpecEnv+"="+string(spec))
	stderr := &tailBuffer{max: 64 << 10}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return conformanceRun{}, err
	}
	if err := cmd.Start(); err != nil {
		return conformanceRun{}, err
	}
	results, perr := conformance.ParseOutput(out, func(r conformance.Result) {
		// A line per test of the storage suite, per scenario of the
		// replication layer, as each ends.
		line := fmt.Sprintf("%-8s %s/%s (%s)", strings.ToUpper(string(r.Status)), s.Name, r.Name, r.Elapsed.Round(time.Millisecond))
		if r.Status != conformance.Pass && r.Message != "" {
			line += ": " + firstLine(r.Message)
		}
		fmt.Fprintln(e.stderr, line)
	})
	_, _ = io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if perr != nil {
		return conformanceRun{}, fmt.Errorf("%s: reading the suite's output: %w", s.Name, perr)
	}
	if len(results) == 0 {
		if ctx.Err() != nil {
			return conformanceRun{}, ctx.Err()
		}
		msg := fmt.Sprintf("the suite ran no tests (%v)", werr)
		if s.Run != "" {
			msg = fmt.Sprintf("no test matches -run %q (%v)", s.Run, werr)
		}
		results = []conformance.Result{{Name: "(suite)", Status: conformance.Error, Message: msg, Output: strings.Split(strings.TrimSpace(stderr.String()), "\n")}}
		fmt.Fprintf(e.stderr, "ERROR    %s: %s\n%s\n", s.Name, msg, stderr.String())
	} else if werr != nil && !slices.ContainsFunc(results, func(r conformance.Result) bool { return r.Status == conformance.Fail || r.Status == conformance.Error }) {
		// The child failed without a failing test: a crash after the
		// last test, or a failure in the clean-up of the suite.
		results = append(results, conformance.Result{Name: "(suite)", Status: conformance.Error, Message: fmt.Sprintf("the suite failed outside any test: %v", werr), Output: strings.Split(strings.TrimSpace(stderr.String()), "\n")})
	}
	sortResults(results)
	return conformanceRun{spec: s, results: results}, nil
}

// conformancePlugin returns the host-side handle of the spec's plugin. A
// first-party one is found as the daemon under test finds it
// (install.LocatePlugin for the spec's replicator executable), so that both
// layers test the same plugin executable.
func conformancePlugin(e *env, s conformanceSpec) (*host.Plugin, error) {
	if s.Builtin == "" {
		return host.New(host.Config{Name: s.Name, Path: s.Path, SHA256: s.SHA256, Logger: e.log}), nil
	}
	path, args, err := install.LocatePlugin(s.Replicator, s.Builtin)
	if err != nil {
		return nil, err
	}
	return host.New(host.Config{Name: s.Builtin, Path: path, Args: args, Logger: e.log}), nil
}

// runConformanceChild is "conformance -child": it runs the suite against
// the backend in conformanceSpecEnv, writing the testing package's output
// to stdout, and exits.
func runConformanceChild(e *env) error {
	var s conformanceSpec
	if err := json.Unmarshal([]byte(os.Getenv(conformanceSpecEnv)), &s); err != nil {
		return cli.Usagef("-child is started by replicator conformance, not by hand (%s: %v)", conformanceSpecEnv, err)
	}
	p, err := conformancePlugin(e, s)
	if err != nil {
		return err
	}
	var (
		storage   conformance.Harness
		scenarios conformance.ScenarioHarness
	)
	if slices.Contains(s.Layers, layerStorage) {
		storage = &pluginHarness{p: p, spec: s}
	}
	if slices.Contains(s.Layers, layerReplication) {
		// A plugin handle of its own: the storage suite closes its
		// harness's when it ends.
		q, err := conformancePlugin(e, s)
		if err != nil {
			return err
		}
		scenarios = &pluginHarness{p: q, spec: s, prefix: "scenario"}
	}
	conformance.RunLayersMain(storage, scenarios, s.Run, s.Timeout)
	return nil // not reached: RunLayersMain exits
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
