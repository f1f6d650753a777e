package sdk_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlitereplicator/replicator/sdk"
)

// The test binary doubles as the plugin and its parent in these tests: the
// role is chosen by an environment variable.
const roleEnv = "REPLICATOR_SDK_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "":
		os.Exit(m.Run())
	case "plugin":
		sdk.Serve("test", func(context.Context, map[string]string) (sdk.Storage, error) {
			return nil, errors.New("no storage in this test")
		})
	case "parent":
		runParent()
	}
	os.Exit(0)
}

// runParent starts a plugin the way a host that sets no parent-death
// signal of its own would (plain exec), waits for its handshake, prints
// its pid and waits to be killed.
func runParent() {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=plugin", sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := cmd.Start(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	// The handshake line comes after Serve set up its parent watch.
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		fmt.Println("error: no handshake:", err)
		os.Exit(1)
	}
	fmt.Println(cmd.Process.Pid)
	select {}
}

// TestPluginExitsWithKilledParent kills a plugin's parent with SIGKILL and
// checks that the plugin exits promptly on its own: the parent set no
// parent-death signal, and on Linux the plugin no longer checks its parent
// periodically, so only Serve's own parent-death signal can end it.
func TestPluginExitsWithKilledParent(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=parent")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("parent printed %q, want the plugin's pid", line)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if !alive(pid) {
		t.Fatalf("plugin %d is not running before its parent is killed", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still runs 5s after its parent was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
