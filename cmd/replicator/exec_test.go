package main

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  app  -x 1 ", []string{"app", "-x", "1"}},
		{`sh -c 'echo "a b"; exit 7'`, []string{"sh", "-c", `echo "a b"; exit 7`}},
		{`a "b \"c\" \$d \x" e\ f ''`, []string{"a", `b "c" $d \x`, "e f", ""}},
		{`x"y"'z'`, []string{"xyz"}},
	} {
		got, err := splitWords(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{`a 'b`, `a "b`} {
		if _, err := splitWords(in); err == nil {
			t.Errorf("splitWords(%q): no error", in)
		}
	}
}

// TestReplicateExec runs an application that writes with the sqlite3 CLI
// and exits 7: replicate exits 7, and the replica holds the write.
func TestReplicateExec(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("needs the sqlite3 CLI (scripts/test.sh installs it)")
	}
	path, repDir := replicated(t, 2)
	url := "file://" + repDir
	app := fmt.Sprintf(`sh -c 'sqlite3 -cmd ".timeout 5000" %s "INSERT INTO t (v) VALUES (4242)" && exit 7'`, path)
	code, stdout, stderr := runCLI(t, "replicate", "-addr", "", "-sync-interval", "10ms", "-exec", app, path, url)
	if code != 7 {
		t.Fatalf("replicate -exec: exit %d, want the application's 7\n%s%s", code, stdout, stderr)
	}
	out := filepath.Join(t.TempDir(), "out.db")
	if code, stdout, stderr := runCLI(t, "restore", "-o", out, url); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	db, err := sql.Open("sqlite", "file:"+out)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t WHERE v = '4242'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("restored replica has %d rows of the application's write (%v), want 1", n, err)
	}

	// An application that cannot start: replication stops, exit 1.
	code, _, stderr = runCLI(t, "replicate", "-addr", "", "-exec", "/nonexistent/app", path, url)
	if code != exitFailure || !strings.Contains(stderr, "-exec") {
		t.Fatalf("replicate -exec of a missing program: exit %d: %s", code, stderr)
	}
	// Replication that cannot start never starts the application.
	marker := filepath.Join(t.TempDir(), "started")
	code, _, _ = runCLI(t, "replicate", "-addr", "", "-exec", "touch "+marker, filepath.Join(t.TempDir(), "missing", "x.db"), url)
	if code == 0 || fileExists(marker) {
		t.Fatalf("replicate -exec with a database that cannot be opened: exit %d, application started: %v", code, fileExists(marker))
	}
	if code, _, stderr := runCLI(t, "replicate", "-addr", "", "-exec", "sh -c 'exit 0", path, url); code != exitUsage {
		t.Fatalf("replicate -exec with an unterminated quote: exit %d, want %d: %s", code, exitUsage, stderr)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestReplicateExecSignal sends SIGTERM to the replicator: the application
// gets it, and replicate exits with the application's status after its
// final sync.
func TestReplicateExecSignal(t *testing.T) {
	path, repDir := replicated(t, 1)
	marker := filepath.Join(t.TempDir(), "started")
	app := fmt.Sprintf(`sh -c 'trap "exit 9" TERM; touch %s; while :; do sleep 0.05; done'`, marker)
	done := make(chan int, 1)
	go func() {
		code, _, _ := runCLI(t, "replicate", "-addr", "", "-exec", app, path, "file://"+repDir)
		done <- code
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !fileExists(marker) {
		if time.Now().After(deadline) {
			t.Fatal("the application did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 9 {
			t.Fatalf("replicate -exec after SIGTERM: exit %d, want the application's 9", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("replicate -exec did not exit after SIGTERM")
	}
}
