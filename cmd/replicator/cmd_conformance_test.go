package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/internal/install"
)

// copyExecutable copies the executable at src into dir.
func copyExecutable(t *testing.T, src, dir string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// runInstalled runs executable bin with args and PATH set to path, and
// returns its stdout, stderr and exit code.
func runInstalled(t *testing.T, bin, path string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), "PATH="+path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", bin, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestConformanceLauncher runs "replicator conformance" as installed:
// replicator hands the command to replicator-conformance beside it, or on
// PATH, with its arguments, output and exit code, and tells it which
// replicator ran it; without it, it fails naming the executable to install.
func TestConformanceLauncher(t *testing.T) {
	installed := filepath.Dir(replicatorBin(t))
	alone := copyExecutable(t, replicatorBin(t), t.TempDir())
	emptyPath := t.TempDir()
	store := t.TempDir()
	storageRun := []string{"conformance", "-layer", "storage", "-run", "Range/PastEOF", "-type", "file", "-setting", "path=" + store}
	for _, tc := range []struct {
		name, bin, path string
		args            []string
		wantCode        int
		wantStdout      []string
		wantStderr      []string
	}{
		{
			name: "Missing", bin: alone, path: emptyPath, args: []string{"conformance", "-h"}, wantCode: exitFailure,
			wantStderr: []string{"replicator conformance: " + install.Conformance + " is neither beside " + alone + " nor on PATH", "go install github.com/sqlitereplicator/replicator/cmd/" + install.Conformance + "@VERSION"},
		},
		{
			name: "Help", bin: replicatorBin(t), path: emptyPath, args: []string{"conformance", "-h"}, wantCode: exitOK,
			wantStderr: []string{"Usage: replicator conformance", "-replicator"},
		},
		{
			name: "UsageError", bin: replicatorBin(t), path: emptyPath, args: []string{"conformance", "-layer", "both", "-type", "file"}, wantCode: exitUsage,
			wantStderr: []string{`replicator conformance: -layer "both"`},
		},
		{
			// Beside replicator: the suite runs, finding the fs plugin
			// from the replicator that ran it.
			name: "Beside", bin: replicatorBin(t), path: emptyPath, args: storageRun, wantCode: exitOK,
			wantStdout: []string{"Range/PastEOF", "PASS fs: 1 pass"},
			wantStderr: []string{"PASS     fs/Range/PastEOF"},
		},
		{
			// On PATH: replicator alone in its directory, the
			// plugin compiled into it.
			name: "OnPath", bin: alone, path: installed, args: storageRun, wantCode: exitOK,
			wantStdout: []string{"PASS fs: 1 pass"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runInstalled(t, tc.bin, tc.path, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, want := range tc.wantStdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

// TestConformanceLauncherChild runs "replicator conformance" in process,
// its output captured, which it cannot hand over by replacing the process:
// it runs replicator-conformance (on PATH, from TestMain) as a child, its
// output and exit code passed through.
func TestConformanceLauncherChild(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{args: []string{"-layer", "both", "-type", "file"}, wantCode: exitUsage, wantStderr: `replicator conformance: -layer "both"`},
		{args: []string{"-layer", "storage", "-run", "Range/PastEOF", "-type", "file", "-setting", "path=" + t.TempDir()}, wantCode: exitOK, wantStdout: "PASS fs: 1 pass"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"conformance"}, tc.args...), &stdout, &stderr)
		if code != tc.wantCode || !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("conformance %q: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d, stdout with %q, stderr with %q",
				tc.args, code, stdout.String(), stderr.String(), tc.wantCode, tc.wantStdout, tc.wantStderr)
		}
	}
}
