package conformance_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// runnerEnv makes the test binary a child running RunMain against the
// store it names, with the -run pattern in runnerEnv_RUN.
const runnerEnv = "REPLICATOR_CONFORMANCE_RUNNER_TEST"

func init() {
	var h conformance.Harness
	switch os.Getenv(runnerEnv) {
	case "":
		return
	case "minimal":
		h = memHarness(sdk.Capabilities{})
	case "broken-range":
		h = conformance.HarnessFunc(func(context.Context, *testing.T) (sdk.Storage, error) {
			return getStrictRange{memstore.New()}, nil
		})
	case "no-store":
		h = conformance.HarnessFunc(func(context.Context, *testing.T) (sdk.Storage, error) {
			return nil, errors.New("cannot reach the bucket")
		})
	case "crash":
		h = conformance.HarnessFunc(func(context.Context, *testing.T) (sdk.Storage, error) {
			os.Exit(7)
			return nil, nil
		})
	}
	conformance.RunMain(h, os.Getenv(runnerEnv+"_RUN"), 0)
}

// runRunner runs RunMain in a child and parses its output.
func runRunner(t *testing.T, store, run string) map[string]conformance.Result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), runnerEnv+"="+store, runnerEnv+"_RUN="+run)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var streamed []string
	results, err := conformance.ParseOutput(out, func(r conformance.Result) { streamed = append(streamed, r.Name) })
	if err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	byName := map[string]conformance.Result{}
	for i, r := range results {
		byName[r.Name] = r
		if streamed[i] != r.Name {
			t.Errorf("result %d streamed as %q, returned as %q", i, streamed[i], r.Name)
		}
	}
	return byName
}

func TestParseOutputStatuses(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child process")
	}
	t.Run("DisabledAndPassed", func(t *testing.T) {
		res := runRunner(t, "minimal", "Conditional/IfAbsent")
		if len(res) != 5 {
			t.Fatalf("got %d results, want the 5 leaves of Conditional/IfAbsent: %v", len(res), res)
		}
		for _, l := range []string{"Missing", "Exists", "AfterDelete", "Concurrent"} {
			r := res["Conditional/IfAbsent/"+l]
			if r.Status != conformance.Disabled || r.Message != "disabled: store does not declare capability IfAbsent" {
				t.Errorf("%s: got %s %q, want disabled", l, r.Status, r.Message)
			}
		}
		if r := res["Conditional/IfAbsent/RejectedIfUndeclared"]; r.Status != conformance.Pass {
			t.Errorf("RejectedIfUndeclared: got %s %q, want pass", r.Status, r.Message)
		}
	})
	t.Run("Alternatives", func(t *testing.T) {
		// "|" outside brackets separates alternatives, each below the
		// layers; the layers' top-level tests are never results.
		res := runRunner(t, "minimal", "Stat/MatchesPut|Range/(Inside|AtEOF)")
		want := []string{"Stat/MatchesPut", "Range/Inside", "Range/AtEOF"}
		if len(res) != len(want) {
			t.Fatalf("got %d results %v, want %v", len(res), res, want)
		}
		for _, name := range want {
			if r, ok := res[name]; !ok || r.Status != conformance.Pass {
				t.Errorf("%s: got %+v, want pass", name, r)
			}
		}
	})
	t.Run("Failed", func(t *testing.T) {
		res := runRunner(t, "broken-range", "Range")
		failed := 0
		for name, r := range res {
			if !strings.HasPrefix(name, "Range/") {
				t.Errorf("unexpected result %q", name)
			}
			if r.Status == conformance.Fail {
				failed++
				if r.Message == "" || len(r.Output) == 0 {
					t.Errorf("%s failed without a message", name)
				}
			}
		}
		if failed == 0 {
			t.Errorf("no failures reported for a store refusing ranges past the end: %v", res)
		}
	})
	t.Run("HarnessError", func(t *testing.T) {
		res := runRunner(t, "no-store", "Stat")
		if len(res) == 0 {
			t.Fatal("no results")
		}
		for name, r := range res {
			if r.Status != conformance.Error || !strings.Contains(r.Message, "cannot reach the bucket") {
				t.Errorf("%s: got %s %q, want error naming the harness failure", name, r.Status, r.Message)
			}
		}
	})
	t.Run("Crash", func(t *testing.T) {
		res := runRunner(t, "crash", "Stat")
		if len(res) != 1 {
			t.Fatalf("got %v, want the one test that was running", res)
		}
		for _, r := range res {
			if r.Status != conformance.Error || !strings.Contains(r.Message, "did not finish") {
				t.Errorf("got %s %q, want error", r.Status, r.Message)
			}
		}
	})
}
