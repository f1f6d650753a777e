package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/internal/cli"
	"github.com/sqlitereplicator/replicator/internal/install"
	"github.com/sqlitereplicator/replicator/internal/testenv"
)

// The command runs the suite in a child, this executable re-executed as
// "replicator-conformance -child": under "go test" that is the test binary,
// which must run the command rather than the tests. (init runs before
// TestMain, and before the testing package reads the flags.)
func init() {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// TestMain builds replicator and the first-party plugins side by side and
// puts them first on PATH: the test binary stands in for
// replicator-conformance, which finds the replicator executable there, and
// the plugins beside it.
func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m))
}

// replicatorBin returns the replicator executable TestMain built, with the
// plugin executables beside it.
func replicatorBin(t *testing.T) string {
	t.Helper()
	return testenv.Bin(t, install.Replicator)
}

// buildExamplePlugin builds examples/storage-plugin, its own module that
// uses this checkout's SDK through a replace directive.
func buildExamplePlugin(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the example plugin")
	}
	bin := filepath.Join(t.TempDir(), "storage-plugin")
	cmd := exec.CommandContext(t.Context(), goTool, "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..", "examples", "storage-plugin")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the example plugin: %v\n%s", err, out)
	}
	return bin
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// runConformanceJSON runs "replicator conformance -json args..." and
// returns its exit code and decoded report.
func runConformanceJSON(t *testing.T, args ...string) (int, conformanceReport, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"-json"}, args...), &stdout, &stderr)
	var rep conformanceReport
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("decoding the JSON report: %v\n%s", err, stdout.String())
		}
	}
	return code, rep, stderr.String()
}

// wantAllPass checks that the report has the whole suite and that every
// test passed or did not apply.
func wantAllPass(t *testing.T, code int, rep conformanceReport, stderr string) {
	t.Helper()
	if code != cli.ExitOK || !rep.OK || len(rep.Backends) != 1 {
		t.Fatalf("exit %d, ok %v, %d backends; want a passing run\nstderr:\n%s", code, rep.OK, len(rep.Backends), stderr)
	}
	b := rep.Backends[0]
	if len(b.Results) < 80 {
		t.Errorf("%d results, want the whole suite (80+)", len(b.Results))
	}
	for _, r := range b.Results {
		if r.Status != conformance.Pass && r.Status != conformance.NotApplicable {
			t.Errorf("%s: %s %q", r.Test, r.Status, r.Message)
		}
	}
	// One progress line per test.
	if n := strings.Count(stderr, "\nPASS     "+b.Name+"/"); n != b.Counts[conformance.Pass] {
		t.Errorf("%d PASS progress lines, want %d", n, b.Counts[conformance.Pass])
	}
}

func TestConformanceExamplePlugin(t *testing.T) {
	t.Parallel()
	bin := buildExamplePlugin(t)
	replicator := replicatorBin(t)
	dir := t.TempDir()
	// Both layers: the storage suite and the replication scenarios, the
	// daemon running the example plugin as a "type: plugin" replica.
	code, rep, stderr := runConformanceJSON(t, "-plugin", bin, "-sha256", sha256File(t, bin), "-setting", "path="+dir, "-replicator", replicator)
	wantAllPass(t, code, rep, stderr)
	for _, name := range scenarioNames() {
		if !slices.ContainsFunc(rep.Backends[0].Results, func(r conformanceResult) bool { return r.Test == name }) {
			t.Errorf("no result for scenario %s", name)
		}
	}
	if rep.Backends[0].Name != "storage-plugin" {
		t.Errorf("backend named %q, want the executable's name", rep.Backends[0].Name)
	}
	// The tests cleaned up after themselves: no object files are left.
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, string(filepath.Separator)+"objects"+string(filepath.Separator)) {
			t.Errorf("left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("WrongPin", func(t *testing.T) {
		code, _, stderr := runConformanceJSON(t, "-plugin", bin, "-sha256", strings.Repeat("0", 64), "-setting", "path="+dir)
		if code != cli.ExitFailure || !strings.Contains(stderr, "sha256") {
			t.Errorf("exit %d, stderr %q; want exit 1 naming the sha256 mismatch", code, stderr)
		}
	})
	t.Run("HarnessError", func(t *testing.T) {
		// A setting the plugin refuses: every test errors, none fails.
		code, rep, stderr := runConformanceJSON(t, "-plugin", bin, "-setting", "path="+dir, "-setting", "bucket=x", "-run", "Stat")
		if code != cli.ExitFailure || rep.OK || len(rep.Backends) != 1 {
			t.Fatalf("exit %d, ok %v; want a failed run\n%s", code, rep.OK, stderr)
		}
		for _, r := range rep.Backends[0].Results {
			if r.Status != conformance.Error || !strings.Contains(r.Message, `unknown setting "bucket"`) {
				t.Errorf("%s: %s %q; want error naming the setting", r.Test, r.Status, r.Message)
			}
		}
	})
}

func TestConformanceFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	junit := filepath.Join(t.TempDir(), "junit.xml")
	// The storage layer only: TestConformanceMatrix runs the scenarios
	// against file and the other backends.
	code, rep, stderr := runConformanceJSON(t, "-layer", "storage", "-type", "file", "-setting", "path="+dir, "-junit", junit)
	wantAllPass(t, code, rep, stderr)

	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("JUnit report: %v\n%s", err, data)
	}
	if len(doc.Suites) != 1 || doc.Suites[0].Tests != len(rep.Backends[0].Results) || doc.Suites[0].Failures+doc.Suites[0].Errors != 0 {
		t.Errorf("JUnit report does not match the results: %+v", doc.Suites)
	}

	t.Run("Text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		url := "file://" + filepath.ToSlash(dir)
		if code := run([]string{"-layer", "storage", "-run", "Range", url}, &stdout, &stderr); code != cli.ExitOK {
			t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		if !strings.HasPrefix(lines[0], "TEST") || !strings.HasSuffix(lines[0], "FS") {
			t.Errorf("header %q, want TEST ... FS", lines[0])
		}
		if !strings.Contains(stdout.String(), "Range/PastEOF") || !strings.Contains(stdout.String(), "PASS fs:") {
			t.Errorf("table lacks a row or the summary:\n%s", stdout.String())
		}
	})
}

func TestConformanceUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-type", "file", "-plugin", "/bin/true"},
		{"-sha256", "00"},
		{"-setting", "path=/tmp"},
		{"-type", "nosuch"},
		{"/not/a/url"},
		{"-type", "file", "-setting", "novalue"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != cli.ExitUsage {
			t.Errorf("conformance %q: exit %d, want %d (%s)", args, code, cli.ExitUsage, stderr.String())
		}
	}
}

// TestConformanceReportStrict checks how statuses count, with and without
// -strict, on results made up for the purpose.
func TestConformanceReportStrict(t *testing.T) {
	runs := []conformanceRun{{
		spec: conformanceSpec{Name: "mystore"},
		results: []conformance.Result{
			{Name: "PutGet/RoundTrip", Status: conformance.Pass},
			{Name: "Conditional/IfAbsent/Missing", Status: conformance.Disabled, Message: "disabled: store does not declare capability IfAbsent"},
			{Name: "Conditional/IfAbsent/RejectedIfUndeclared", Status: conformance.Pass},
			{Name: "PutGet/MaxObjectSize", Status: conformance.NotApplicable, Message: "not applicable: store declares no MaxObjectSize"},
		},
	}}
	if rep := newConformanceReport(runs, false); !rep.OK || rep.Backends[0].Summary != "2 pass, 1 disabled, 1 n/a" {
		t.Errorf("not strict: ok %v, summary %q; want a pass", rep.OK, rep.Backends[0].Summary)
	}
	rep := newConformanceReport(runs, true)
	if rep.OK {
		t.Error("strict: a disabled test passed the run")
	}
	var out bytes.Buffer
	if err := rep.writeText(&out, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"disabled (strict)", "mystore Conditional/IfAbsent/Missing: disabled: disabled: store does not declare capability IfAbsent", "FAIL mystore: 2 pass, 1 disabled, 1 n/a"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
	junit := filepath.Join(t.TempDir(), "junit.xml")
	if err := rep.writeJUnit(junit); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	data, _ := os.ReadFile(junit)
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if s := doc.Suites[0]; s.Tests != 4 || s.Failures != 1 || s.Skipped != 1 || s.Errors != 0 {
		t.Errorf("JUnit suite %+v; want 4 tests, 1 failure (strict disabled), 1 skipped (n/a)", s)
	}
}
