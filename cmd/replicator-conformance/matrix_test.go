package main

import (
	"bytes"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/internal/cli"
	"github.com/sqlitereplicator/replicator/internal/testenv"
)

// matrixFileEnv names a file that TestConformanceMatrix writes the result
// matrix to, so that the test script can print it at the end of a run.
const matrixFileEnv = "REPLICATOR_CONFORMANCE_MATRIX"

// TestConformanceMatrix runs the replication scenarios of "replicator
// conformance" against every backend whose test server is configured
// (scripts/test-servers.sh; the file backend always), the backends in
// parallel, and prints one result matrix. Every scenario must pass, or be
// disabled for a capability the backend does not declare.
func TestConformanceMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("long test: the daemon scenarios against every backend")
	}
	bin := replicatorBin(t)
	backends := testenv.Backends(t)
	names := make([]string, 0, len(backends))
	for name := range backends {
		names = append(names, name)
	}
	sort.Strings(names)
	reports := make([]conformanceReport, len(names))
	t.Run("Backends", func(t *testing.T) {
		for i, name := range names {
			rc := backends[name]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				args := []string{"-layer", layerReplication, "-replicator", bin, "-type", rc.Type}
				for k, v := range rc.Settings {
					args = append(args, "-setting", k+"="+v)
				}
				code, rep, stderr := runConformanceJSON(t, args...)
				reports[i] = rep
				if code != cli.ExitOK || !rep.OK || len(rep.Backends) != 1 {
					t.Errorf("exit %d, ok %v; want every scenario to pass\n%s", code, rep.OK, stderr)
					for _, b := range rep.Backends {
						for _, r := range b.Results {
							if failed(r.Status, false) {
								t.Errorf("%s %s: %s\n%s", b.Name, r.Test, r.Status, strings.Join(r.Output, "\n"))
							}
						}
					}
					return
				}
				if got, want := len(rep.Backends[0].Results), len(scenarioNames()); got != want {
					t.Errorf("%d results, want one per scenario (%d)", got, want)
				}
			})
		}
	})

	merged := conformanceReport{OK: true}
	for _, rep := range reports {
		merged.OK = merged.OK && rep.OK
		merged.Backends = append(merged.Backends, rep.Backends...)
		for _, test := range rep.Tests {
			if !slices.Contains(merged.Tests, test) {
				merged.Tests = append(merged.Tests, test)
			}
		}
	}
	var out bytes.Buffer
	if err := merged.writeText(&out, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("replication scenarios, every configured backend:\n%s", out.String())
	if path := os.Getenv(matrixFileEnv); path != "" {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// scenarioNames are the matrix rows of the replication layer.
func scenarioNames() []string {
	var names []string
	for _, n := range conformance.ScenarioNames() {
		names = append(names, "Replication/"+n)
	}
	return names
}

// TestConformanceLayers checks -layer and how the two layers' results are
// ordered in a report.
func TestConformanceLayers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"all", []string{layerStorage, layerReplication}, true},
		{"", []string{layerStorage, layerReplication}, true},
		{"storage", []string{layerStorage}, true},
		{"replication", []string{layerReplication}, true},
		{"both", nil, false},
	} {
		got, err := parseLayers(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("parseLayers(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
	// Scenarios end in any order (they run in parallel); the report
	// lists the storage tests first, then the scenarios in suite order.
	results := []conformance.Result{
		{Name: "Replication/Corruption"}, {Name: "PutGet/RoundTrip"}, {Name: "Replication/Basic"},
		{Name: "Replication/Kill9"}, {Name: "Range/Inside"},
	}
	sortResults(results)
	var order []string
	for _, r := range results {
		order = append(order, r.Name)
	}
	if want := []string{"PutGet/RoundTrip", "Range/Inside", "Replication/Basic", "Replication/Kill9", "Replication/Corruption"}; !slices.Equal(order, want) {
		t.Errorf("sorted results %v, want %v", order, want)
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"-layer", "both", "-type", "file"}, &stdout, &stderr); code != cli.ExitUsage || !strings.Contains(stderr.String(), "-layer") {
		t.Errorf("conformance -layer both: exit %d, %q; want a usage error naming -layer", code, stderr.String())
	}
}
