package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/host"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// The test binary doubles as the plugins and hosts these tests start: the
// mode is chosen by an environment variable.
const modeEnv = "REPLICATOR_HOST_TEST_MODE"

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "":
		os.Exit(m.Run())
	case "plugin":
		servePlugin(false)
	case "noisy":
		servePlugin(true)
	case "v9":
		serveVersion9()
	case "host":
		runHost()
	}
	os.Exit(0)
}

func servePlugin(noisy bool) {
	if marker := os.Getenv("REPLICATOR_HOST_TEST_MARKER"); marker != "" {
		_ = os.WriteFile(marker, []byte("ran"), 0o644)
	}
	sdk.Serve("test", func(ctx context.Context, settings map[string]string) (sdk.Storage, error) {
		slog.Info("opened test store", "answer", 42)
		if noisy {
			fmt.Println("plain text on stdout")
			_, _ = syscall.Write(1, []byte("raw bytes on file descriptor 1\n"))
		}
		return &blockingStore{Store: memstore.New(memstore.WithCapabilities(sdk.Capabilities{IfAbsent: true}))}, nil
	})
}

// blockingStore blocks a Put whose key is "block" until its context ends,
// so a test can kill the plugin in the middle of a call.
type blockingStore struct{ *memstore.Store }

func (s *blockingStore) Put(ctx context.Context, key string, r io.Reader, opts sdk.PutOptions) (sdk.ObjectInfo, error) {
	if key == "block" {
		<-ctx.Done()
		return sdk.ObjectInfo{}, ctx.Err()
	}
	return s.Store.Put(ctx, key, r, opts)
}

func serveVersion9() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{9: sdk.VersionedPlugins(nil)[sdk.ProtocolVersion]},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}

// runHost launches a plugin, prints its pid and waits to be killed.
func runHost() {
	p := host.New(host.Config{Name: "test", Path: os.Args[0], Args: []string{"-test.run=^$"}})
	os.Setenv(modeEnv, "plugin")
	if _, err := p.Start(context.Background()); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(p.Pid())
	select {}
}

func newPlugin(t *testing.T, mode string, cfg host.Config) *host.Plugin {
	t.Helper()
	t.Setenv(modeEnv, mode)
	cfg.Name = "test"
	cfg.Path = os.Args[0]
	cfg.Args = []string{"-test.run=^$"}
	p := host.New(cfg)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestRoundTripAndLogs(t *testing.T) {
	var logs syncBuffer
	p := newPlugin(t, "plugin", host.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	st, err := p.Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "a/b", strings.NewReader("hello"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := st.Get(ctx, "a/b", 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "ell" {
		t.Fatalf("ranged get = %q, want %q", got, "ell")
	}
	if _, err := st.Stat(ctx, "missing"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("stat missing: err = %v, want not found", err)
	}
	if _, err := st.Put(ctx, "a/b", strings.NewReader("x"), sdk.PutOptions{IfAbsent: true}); !errors.Is(err, sdk.ErrAlreadyExists) {
		t.Fatalf("if-absent put on existing key: err = %v, want already exists", err)
	}
	if _, err := st.Put(ctx, "../escape", strings.NewReader("x"), sdk.PutOptions{}); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Fatalf("put ../escape: err = %v, want invalid argument", err)
	}
	if c := st.Capabilities(); !c.IfAbsent || c.IfMatch {
		t.Fatalf("capabilities = %+v, want the plugin's declaration", c)
	}
	waitFor(t, "plugin log record in host log", func() bool {
		s := logs.String()
		return strings.Contains(s, "opened test store") && strings.Contains(s, "answer=42") && strings.Contains(s, "plugin=test")
	})
}

func TestPluginSpeakingAnotherProtocol(t *testing.T) {
	p := newPlugin(t, "v9", host.Config{})
	_, err := p.Start(context.Background())
	if err == nil {
		t.Fatal("a plugin speaking protocol 9 started")
	}
	for _, want := range []string{"plugin test", "speaks storage protocol 9", "this replicator speaks 1", "install a version of the plugin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestPluginKilledMidCall(t *testing.T) {
	p := newPlugin(t, "plugin", host.Config{})
	ctx := context.Background()
	st, err := p.Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	errc := make(chan error, 1)
	go func() {
		_, err := st.Put(ctx, "block", strings.NewReader("data"), sdk.PutOptions{})
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !sdk.IsTransient(err) {
			t.Fatalf("put during plugin death: err = %v (code %v), want a transient error", err, sdk.CodeOf(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("put did not return after the plugin was killed")
	}
	if _, err := st.Put(ctx, "after", strings.NewReader("x"), sdk.PutOptions{}); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
	if p.Restarts() != 1 {
		t.Fatalf("restarts = %d, want 1", p.Restarts())
	}
	if p.Pid() == pid || p.Pid() == 0 {
		t.Fatalf("plugin pid %d after restart, was %d", p.Pid(), pid)
	}
}

func TestPluginWritingToStdout(t *testing.T) {
	var logs syncBuffer
	p := newPlugin(t, "noisy", host.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	st, err := p.Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "k", strings.NewReader("v"), sdk.PutOptions{}); err != nil {
		t.Fatalf("put through a plugin that writes to stdout: %v", err)
	}
	waitFor(t, "stdout lines in the host log", func() bool {
		s := logs.String()
		return strings.Contains(s, "plain text on stdout") && strings.Contains(s, "raw bytes on file descriptor 1")
	})
}

func TestWrongSHA256Pin(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	t.Setenv("REPLICATOR_HOST_TEST_MARKER", marker)
	p := newPlugin(t, "plugin", host.Config{SHA256: strings.Repeat("ab", 32)})
	_, err := p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refusing to run") || !strings.Contains(err.Error(), strings.Repeat("ab", 32)) {
		t.Fatalf("start with a wrong pin: err = %v, want a refusal naming the pin", err)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the plugin ran despite a wrong sha256 pin")
	}

	sum := fileSHA256(t, os.Args[0])
	p = newPlugin(t, "plugin", host.Config{SHA256: sum})
	if _, err := p.Start(context.Background()); err != nil {
		t.Fatalf("start with the right pin: %v", err)
	}
}

func TestNoPluginOutlivesHost(t *testing.T) {
	for _, how := range []string{"close", "kill -9 host"} {
		t.Run(how, func(t *testing.T) {
			var pid int
			if how == "close" {
				p := newPlugin(t, "plugin", host.Config{})
				if _, err := p.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				pid = p.Pid()
				p.Close()
			} else {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), modeEnv+"=host")
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				line := make([]byte, 64)
				n, _ := out.Read(line)
				pid, err = strconv.Atoi(strings.TrimSpace(string(line[:n])))
				if err != nil {
					cmd.Process.Kill()
					t.Fatalf("host printed %q, want the plugin pid", line[:n])
				}
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = cmd.Wait()
			}
			waitFor(t, fmt.Sprintf("plugin %d to exit", pid), func() bool { return !alive(pid) })
		})
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOnRestartCalled(t *testing.T) {
	var calls int
	var mu sync.Mutex
	p := newPlugin(t, "plugin", host.Config{OnRestart: func() { mu.Lock(); calls++; mu.Unlock() }})
	ctx := context.Background()
	st, err := p.Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next call to restart the plugin", func() bool {
		_, err := st.Stat(ctx, "x")
		return errors.Is(err, sdk.ErrNotFound)
	})
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("OnRestart called %d times, want 1", calls)
	}
}

// TestRestartBackoff kills the plugin again and again: the first restart
// is immediate, each further one waits twice as long (up to the maximum),
// calls in between fail at once with a transient error that says so, and
// a plugin that stayed up long enough is restarted at once again.
func TestRestartBackoff(t *testing.T) {
	const minDelay, maxDelay = 80 * time.Millisecond, 320 * time.Millisecond
	p := newPlugin(t, "plugin", host.Config{MinRestartDelay: minDelay, MaxRestartDelay: maxDelay})
	ctx := context.Background()
	st, err := p.Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	kill := func() {
		t.Helper()
		pid := p.Pid()
		if pid == 0 {
			t.Fatal("plugin not running")
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the plugin to be seen dead", func() bool { return p.Pid() == 0 })
		// Dead while idle is not unhealthy: the next request starts it.
		if err := p.Health(); err != nil && !strings.Contains(err.Error(), "restarting") {
			t.Fatalf("Health() = %v", err)
		}
	}
	stat := func() error {
		_, err := st.Stat(ctx, "x")
		if errors.Is(err, sdk.ErrNotFound) {
			return nil
		}
		return err
	}
	// Restart n waits want; calls before that fail with a transient error.
	for n, want := range []time.Duration{0, minDelay, 2 * minDelay, 4 * minDelay, maxDelay, maxDelay} {
		kill()
		start := time.Now()
		err := stat()
		if want == 0 {
			if err != nil {
				t.Fatalf("first restart: %v, want an immediate restart", err)
			}
			continue
		}
		if !sdk.IsTransient(err) || !strings.Contains(err.Error(), fmt.Sprintf("restarting: attempt %d, next in", n+1)) {
			t.Fatalf("restart %d: call during backoff: %v, want a transient 'restarting: attempt %d, next in' error", n+1, err, n+1)
		}
		if h := p.Health(); h == nil || !strings.Contains(h.Error(), "restarting") {
			t.Fatalf("Health() during backoff = %v", h)
		}
		for stat() != nil {
			time.Sleep(5 * time.Millisecond)
		}
		if got := time.Since(start); got < want || got > want+2*time.Second {
			t.Fatalf("restart %d came after %s, want %s", n+1, got, want)
		}
		if h := p.Health(); h != nil {
			t.Fatalf("Health() after restart = %v", h)
		}
	}
	if got := p.Restarts(); got != 6 {
		t.Fatalf("Restarts() = %d, want 6", got)
	}
	// Up for longer than the maximum delay: the next death restarts at once.
	time.Sleep(maxDelay + 50*time.Millisecond)
	kill()
	if err := stat(); err != nil {
		t.Fatalf("restart after a stable run: %v, want an immediate restart", err)
	}
}

// TestIdleStop: with IdleTimeout, a plugin nothing used for that long is
// stopped, a reader still streaming keeps it running, and the next call
// starts a new process at once, which is not a restart.
func TestIdleStop(t *testing.T) {
	const idle = 300 * time.Millisecond
	var restarts, idleStops int
	var mu sync.Mutex
	p := newPlugin(t, "plugin", host.Config{IdleTimeout: idle,
		OnRestart:  func() { mu.Lock(); restarts++; mu.Unlock() },
		OnIdleStop: func() { mu.Lock(); idleStops++; mu.Unlock() },
	})
	ctx := context.Background()
	st, err := p.Open(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "k", strings.NewReader("hello"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := st.Get(ctx, "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	time.Sleep(3 * idle)
	if p.Pid() != pid || !alive(pid) {
		t.Fatal("the plugin was stopped while a reader of it was open")
	}
	if b, err := io.ReadAll(rc); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	rc.Close()
	waitFor(t, "the idle plugin to stop", func() bool { return p.Pid() == 0 && !alive(pid) })
	// A new process: the test store keeps objects in memory, so the
	// object is gone, and the call succeeds at once.
	if _, err := st.Stat(ctx, "k"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("stat after the idle stop: %v, want NotFound from a new process", err)
	}
	if p.Pid() == 0 || p.Pid() == pid {
		t.Fatalf("pid after the idle stop = %d (was %d)", p.Pid(), pid)
	}
	mu.Lock()
	defer mu.Unlock()
	if restarts != 0 || p.Restarts() != 0 || p.Health() != nil {
		t.Fatalf("an idle stop counted as a death: OnRestart %d, Restarts %d, Health %v", restarts, p.Restarts(), p.Health())
	}
	if idleStops != 1 {
		t.Fatalf("OnIdleStop called %d times for one idle stop", idleStops)
	}
}
