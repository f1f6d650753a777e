package conformance_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/plugins/fs"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// These tests check that the scenarios report what goes wrong, each in a
// child process (the test binary) running RunLayersMain with a harness
// named by scenarioEnv. The passing case, against every backend, is tested
// by cmd/replicator, which builds the daemon.

const (
	scenarioEnv = "REPLICATOR_CONFORMANCE_SCENARIO_TEST"
	// lossyPlugin is a plugin (this test binary, through a wrapper script)
	// whose store acknowledges segments it never writes.
	lossyPlugin = "lossy-fs"
)

func init() {
	plugintest.ServeIfChild(lossyPlugin, func(ctx context.Context, settings map[string]string) (sdk.Storage, error) {
		st, err := fs.Open(ctx, settings)
		if err != nil {
			return nil, err
		}
		return &lossyStore{Storage: st}, nil
	})
	var h conformance.ScenarioHarness
	switch os.Getenv(scenarioEnv) {
	case "":
		return
	case "no-replicator":
		h = fsScenarioHarness{bin: filepath.Join(os.TempDir(), "no-such-replicator")}
	case "undeclared":
		h = fsScenarioHarness{bin: os.Args[0], hideCaps: true}
	case "lossy":
		h = fsScenarioHarness{bin: os.Getenv(scenarioEnv + "_BIN"), plugin: os.Getenv(scenarioEnv + "_PLUGIN")}
	}
	conformance.RunLayersMain(nil, h, os.Getenv(scenarioEnv+"_RUN"), 0)
}

// lossyStore drops every segment after the second, reporting success.
type lossyStore struct {
	sdk.Storage
	segments atomic.Int64
}

func (l *lossyStore) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	if strings.HasSuffix(key, ".segment") && l.segments.Add(1) > 2 {
		n, err := io.Copy(io.Discard, r)
		return sdk.ObjectInfo{Key: key, Size: n, ETag: fmt.Sprintf("lost-%d", l.segments.Load())}, err
	}
	return l.Storage.Put(ctx, key, r, opts)
}

// fsScenarioHarness gives each scenario a fresh directory of the fs
// backend, as a first-party replica or through plugin.
type fsScenarioHarness struct {
	bin      string
	plugin   string // a plugin executable instead of type file
	hideCaps bool   // the harness's store declares no conditions
}

func (h fsScenarioHarness) Replicator() string { return h.bin }

func (h fsScenarioHarness) NewReplica(ctx context.Context, t *testing.T) (conformance.ReplicaConfig, sdk.Storage, error) {
	settings := map[string]string{"path": t.TempDir()}
	st, err := fs.Open(ctx, settings)
	if err != nil {
		return conformance.ReplicaConfig{}, nil, err
	}
	rc := conformance.ReplicaConfig{Type: "file", Settings: settings}
	if h.plugin != "" {
		rc.Type, rc.Plugin = "plugin", h.plugin
	}
	if h.hideCaps {
		return rc, noCaps{st}, nil
	}
	return rc, st, nil
}

type noCaps struct{ sdk.Storage }

func (noCaps) Capabilities() sdk.Capabilities { return sdk.Capabilities{} }

// runScenarioChild runs the scenarios matching run against harness in a
// child and parses its output.
func runScenarioChild(t *testing.T, harness, run string, env ...string) map[string]conformance.Result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), append(env, scenarioEnv+"="+harness, scenarioEnv+"_RUN="+run)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	results, err := conformance.ParseOutput(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	byName := map[string]conformance.Result{}
	for _, r := range results {
		byName[r.Name] = r
	}
	return byName
}

func TestScenarioStatuses(t *testing.T) {
	if os.Getenv(scenarioEnv) != "" || os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	t.Run("HarnessError", func(t *testing.T) {
		res := runScenarioChild(t, "no-replicator", "Basic|Kill9")
		if len(res) != 2 {
			t.Fatalf("got %v, want results for Basic and Kill9", res)
		}
		for name, r := range res {
			if !strings.HasPrefix(name, conformance.ScenarioRoot+"/") || r.Status != conformance.Error || !strings.Contains(r.Message, "harness:") {
				t.Errorf("%s: %s %q; want error from the harness", name, r.Status, r.Message)
			}
		}
	})
	t.Run("Disabled", func(t *testing.T) {
		res := runScenarioChild(t, "undeclared", "Fencing")
		r, ok := res[conformance.ScenarioRoot+"/Fencing"]
		if len(res) != 1 || !ok || r.Status != conformance.Disabled || !strings.Contains(r.Message, "IfAbsent") {
			t.Errorf("got %v; want Fencing disabled for want of IfAbsent", res)
		}
	})
	t.Run("LostSegments", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the replicator")
		}
		dir := t.TempDir()
		bin := filepath.Join(dir, "replicator")
		build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "../cmd/replicator")
		if out, err := build.CombinedOutput(); err != nil {
			t.Skipf("cannot build the replicator here: %v\n%s", err, out)
		}
		// The daemon starts the plugin with no arguments or environment of
		// ours: a script supplies them.
		plugin := filepath.Join(dir, "lossy-plugin")
		script := fmt.Sprintf("#!/bin/sh\nREPLICATOR_PLUGINTEST_SERVE=%s exec %q -test.run='^$' \"$@\"\n", lossyPlugin, os.Args[0])
		if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		res := runScenarioChild(t, "lossy", "Basic", scenarioEnv+"_BIN="+bin, scenarioEnv+"_PLUGIN="+plugin)
		r, ok := res[conformance.ScenarioRoot+"/Basic"]
		if !ok || r.Status != conformance.Fail {
			t.Errorf("got %+v; want Basic to fail against a store that loses segments", res)
		}
		t.Logf("Basic against a store that loses segments: %s", r.Message)
	})
}
