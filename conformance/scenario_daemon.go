package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is one "replicator replicate -config FILE" child process.
type daemon struct {
	s    *scen
	cmd  *exec.Cmd
	addr string
	log  string // its stderr, a file in the scenario's directory
	done chan struct{}
	err  error // the exit status, once done is closed
}

// dbStatus is the daemon's GET /databases entry for one database.
type dbStatus struct {
	DB         string `json:"db"`
	Generation string `json:"generation"`
	TxID       uint64 `json:"txid"`
	Replicas   []struct {
		Name       string `json:"name"`
		Generation string `json:"generation"`
		TxID       uint64 `json:"txid"`
		LastError  string `json:"last_error"`
		Status     string `json:"status"`
	} `json:"replicas"`
}

// startDaemon starts the daemon on the scenario's config (or cfg, when
// given) with the extra environment variables env, and waits until it
// serves its status.
func (s *scen) startDaemon(cfg string, env ...string) *daemon {
	s.t.Helper()
	if cfg == "" {
		cfg = s.cfg
	}
	addr, err := freeAddr()
	if err != nil {
		s.t.Fatalf("harness: %v", err)
	}
	logf, err := os.CreateTemp(s.dir, "daemon-*.log")
	if err != nil {
		s.t.Fatalf("harness: %v", err)
	}
	d := &daemon{s: s, addr: addr, log: logf.Name(), done: make(chan struct{})}
	d.cmd = exec.Command(s.bin, "replicate", "-config", cfg, "-addr", addr)
	d.cmd.Env = append(cleanEnv(), env...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("harness: start the daemon: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	s.t.Cleanup(func() {
		if !d.exited() {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	ok := s.eventually(30*time.Second, func() bool {
		if d.exited() {
			return true
		}
		_, err := d.statusErr()
		return err == nil
	})
	if d.exited() {
		s.t.Fatalf("the daemon exited at start-up (%v):\n%s", d.err, d.logTail())
	}
	if !ok {
		s.t.Fatalf("the daemon did not serve its status within 30s:\n%s", d.logTail())
	}
	return d
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// logTail returns the end of the daemon's log, for failure messages.
func (d *daemon) logTail() string {
	data, _ := os.ReadFile(d.log)
	const max = 6000
	if len(data) > max {
		data = append([]byte("...\n"), data[len(data)-max:]...)
	}
	return string(data)
}

func (d *daemon) statusErr() (dbStatus, error) {
	ctx, cancel := context.WithTimeout(d.s.ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+"/databases", nil)
	if err != nil {
		return dbStatus{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return dbStatus{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return dbStatus{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return dbStatus{}, fmt.Errorf("GET /databases: %s", resp.Status)
	}
	var sts []dbStatus
	if err := json.Unmarshal(body, &sts); err != nil {
		return dbStatus{}, fmt.Errorf("GET /databases: %w", err)
	}
	if len(sts) != 1 || len(sts[0].Replicas) != 1 {
		return dbStatus{}, fmt.Errorf("GET /databases: want one database with one replica, got %s", body)
	}
	return sts[0], nil
}

// position is a replica position the daemon reported.
type position struct {
	Generation string
	TxID       uint64
}

// waitSynced waits until the daemon reports that the replica holds
// everything it captured, and that nothing new was captured for a while
// (longer than the capture loop's fallback poll, so the application's last
// commit has been seen), and returns that position.
func (d *daemon) waitSynced(timeout time.Duration) position {
	d.s.t.Helper()
	var (
		last   position
		stable time.Time
		lastSt dbStatus
		err    error
	)
	ok := d.s.eventually(timeout, func() bool {
		if d.exited() {
			return true
		}
		lastSt, err = d.statusErr()
		if err != nil {
			return false
		}
		r := lastSt.Replicas[0]
		cur := position{lastSt.Generation, lastSt.TxID}
		caught := r.Generation == cur.Generation && r.TxID == cur.TxID && cur.TxID > 0
		switch {
		case !caught:
			stable = time.Time{}
		case cur != last || stable.IsZero():
			stable = time.Now()
		}
		last = cur
		return caught && time.Since(stable) > 1200*time.Millisecond
	})
	if d.exited() {
		d.s.t.Fatalf("the daemon exited (%v):\n%s", d.err, d.logTail())
	}
	if !ok {
		d.s.t.Fatalf("the replica did not catch up with the daemon within %s (last status %+v, %v):\n%s", timeout, lastSt, err, d.logTail())
	}
	return last
}

// stop sends SIGTERM (a final upload, then exit 0) and waits.
func (d *daemon) stop() {
	d.s.t.Helper()
	if err := d.stopErr(); err != nil {
		d.s.t.Fatalf("daemon stop: %v\n%s", err, d.logTail())
	}
}

func (d *daemon) stopErr() error {
	if d.exited() {
		return fmt.Errorf("the daemon had already exited: %v", d.err)
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(90 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return errors.New("the daemon did not exit within 90s of SIGTERM")
	}
	if d.err != nil {
		return fmt.Errorf("the daemon's exit after SIGTERM: %v", d.err)
	}
	return nil
}

// kill sends SIGKILL and waits.
func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// children returns the process ids of the daemon's child processes (its
// plugins), from /proc.
func (d *daemon) children() ([]int, error) {
	pid := d.cmd.Process.Pid
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil || len(tasks) == 0 {
		return nil, fmt.Errorf("list the daemon's child processes: /proc/%d/task/*/children not readable (this scenario needs Linux /proc)", pid)
	}
	var pids []int
	seen := map[int]bool{}
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, field := range strings.Fields(string(data)) {
			if p, err := strconv.Atoi(field); err == nil && !seen[p] {
				seen[p] = true
				pids = append(pids, p)
			}
		}
	}
	return pids, nil
}

// logContains reports whether the daemon's log contains s.
func (d *daemon) logContains(s string) bool {
	data, _ := os.ReadFile(d.log)
	return strings.Contains(string(data), s)
}
