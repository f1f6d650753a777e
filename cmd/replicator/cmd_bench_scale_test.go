package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchScaleSmoke runs "bench scale" at tiny sizes through the real
// daemon binary (the test binary, re-executed: TestMain dispatches to
// main) and checks that every number it reports is there and plausible.
// It says nothing about whether the targets are met.
func TestBenchScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon and restores twice")
	}
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "scale", "-dir", t.TempDir(), "-dbs", "3", "-duration", "2s", "-settle", "0s",
		"-load-duration", "2s", "-rate", "20", "-sync-interval", "200ms", "-restore-size", "1MiB,2MiB", "-restore-txns", "20", "-json"}
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("bench scale exited %d\nstderr:\n%s", code, stderr.String())
	}
	var res scaleResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if time.Since(res.Date) > time.Hour || res.Machine.Cores <= 0 || res.Settings.DBs != 3 {
		t.Errorf("date, machine or settings missing: %+v %+v %+v", res.Date, res.Machine, res.Settings)
	}
	i := res.Idle
	// The daemon and at least one plugin process.
	if i.Seconds < 1.5 || i.Processes < 2 || i.RSSMB <= 0 || i.RSSMaxMB < i.RSSMB || i.DaemonRSSMB <= 0 || i.DaemonRSSMB >= i.RSSMB || i.CPUPercent < 0 || i.DaemonCPU > i.CPUPercent || i.LoadBefore == "" {
		t.Errorf("idle: implausible numbers: %+v", i)
	}
	q := res.Requests
	if q == nil {
		t.Fatal("no request count")
	}
	// 20 txn/s for 2s with uploads at most every 200ms: several uploads,
	// each a put.
	if q.Commits < 30 || q.Rate <= 0 || q.ByOperation["put"] < 3 || q.Requests < q.ByOperation["put"] || q.PerHour <= 0 || q.IdleSeconds < 1.5 {
		t.Errorf("requests: implausible numbers: %+v", q)
	}
	if len(res.Restores) != 2 {
		t.Fatalf("got %d restore measurements, want 2", len(res.Restores))
	}
	for _, r := range res.Restores {
		if r.Bytes < 1<<20 || r.Transactions != 20 || r.Objects < 2 {
			t.Errorf("restore: implausible setup: %+v", r)
		}
		if r.Copy.Seconds <= 0 || r.Copy.MBs <= 0 {
			t.Errorf("restore: implausible copy: %+v", r.Copy)
		}
		for _, run := range r.restores() {
			if run.Seconds <= 0 || run.MBs <= 0 || run.PeakRSSMB <= 0 || run.Ratio <= 0 {
				t.Errorf("restore: implausible run, or no peak memory or ratio: %+v", *run)
			}
		}
	}
	// 3 databases: only the targets that name a count at or above 3, the
	// idle requests, the restores (three check levels at two sizes, and
	// memory), and no request target at 20 txn/s.
	if len(res.Targets) != 10 {
		t.Errorf("got %d target verdicts, want 10: %v", len(res.Targets), res.Targets)
	}

	// The table form names each part.
	stdout.Reset()
	stderr.Reset()
	work := t.TempDir()
	args = []string{"bench", "scale", "-dir", work, "-dbs", "1", "-duration", "500ms", "-settle", "0s", "-load-duration", "0s", "-restore-size", ""}
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("bench scale exited %d\nstderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"machine:", "RSS, daemon + plugins", "CPU, daemon + plugins", "storage:", "targets:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	if left, _ := filepath.Glob(filepath.Join(work, "*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := os.Stat(work); err != nil {
		t.Error(err)
	}
}

func TestBenchScaleUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-dbs", "0"},
		{"-duration", "1ms"},
		{"-restore-size", "12 apples"},
		{"-restore-size", "1KiB"},
		{"-rate", "0"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"bench", "scale"}, args...), &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (usage)\n%s", args, code, exitUsage, stderr.String())
		}
	}
}
