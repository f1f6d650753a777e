package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestBenchSmoke runs the benchmark briefly, through the real plugin path,
// and checks that its report parses and that every number is positive. It
// says nothing about whether the targets are met.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon for a few seconds")
	}
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "-dir", t.TempDir(), "-duration", "300ms", "-sync-interval", "50ms", "-json"}
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("bench exited %d\nstderr:\n%s", code, stderr.String())
	}
	var res benchResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if time.Since(res.Date) > time.Hour || res.Machine.Cores <= 0 || res.Machine.Go == "" || res.Settings.Synchronous == "" {
		t.Errorf("machine or date missing: %+v %+v", res.Date, res.Machine)
	}
	if len(res.Scenarios) != 3 {
		t.Fatalf("got %d scenarios, want 3", len(res.Scenarios))
	}
	for _, s := range res.Scenarios {
		if s.Commits <= 0 || s.Rate <= 0 || s.Uploads <= 0 || s.LagP50ms <= 0 || s.LagP99ms < s.LagP50ms || s.LagMaxms < s.LagP99ms || s.StagedP50ms <= 0 {
			t.Errorf("scenario %q: implausible numbers: %+v", s.Name, s)
		}
	}
	tp := res.Throughput
	if tp.WithoutCommits <= 0 || tp.WithCommits <= 0 || tp.WithoutRate <= 0 || tp.WithRate <= 0 || tp.Ratio <= 0 {
		t.Errorf("throughput: implausible numbers: %+v", tp)
	}
	if len(res.Targets) != 5 {
		t.Errorf("got %d target verdicts, want 5: %v", len(res.Targets), res.Targets)
	}

	// The table form names every scenario and the ratio.
	stdout.Reset()
	stderr.Reset()
	args = []string{"bench", "-dir", t.TempDir(), "-duration", "100ms", "-sync-interval", "20ms"}
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("bench exited %d\nstderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"machine:", "sparse", "100 txn/s", "1000 txn/s", "ratio", "targets:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(d[:1], 99); got != time.Millisecond {
		t.Errorf("p99 of one = %v", got)
	}
}

func TestBenchWaits(t *testing.T) {
	at := func(ms ...float64) []time.Time {
		var ts []time.Time
		base := time.Unix(0, 0)
		for _, m := range ms {
			ts = append(ts, base.Add(time.Duration(m*float64(time.Millisecond))))
		}
		return ts
	}
	for _, c := range []struct {
		name    string
		ts      []time.Time
		counts  [3]int
		seconds float64
	}{
		{"none", nil, [3]int{}, 0},
		{"short gaps only", at(0, 0.02, 0.5, 1.49), [3]int{}, 0},
		{"one of each", at(0, 1, 6, 26), [3]int{1, 1, 1}, 0.026},
		{"edges", at(0, 5, 25, 25.01), [3]int{0, 1, 1}, 0.025},
	} {
		t.Run(c.name, func(t *testing.T) {
			var w benchWaits
			w.add(c.ts)
			if w.Counts != c.counts || math.Abs(w.Seconds-c.seconds) > 1e-9 {
				t.Errorf("got %v %.6f s, want %v %.6f s", w.Counts, w.Seconds, c.counts, c.seconds)
			}
		})
	}
}

// TestBenchOnly runs each half of the benchmark alone: the report holds
// that half and only its verdicts; a bad -only is a usage error.
func TestBenchOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon")
	}
	for _, tc := range []struct {
		only                string
		scenarios, verdicts int
		throughput          bool
	}{
		{"throughput", 0, 1, true},
		{"lag", 3, 4, false},
	} {
		t.Run(tc.only, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"bench", "-dir", t.TempDir(), "-duration", "100ms", "-sync-interval", "20ms", "-sparse", "2", "-only", tc.only, "-json"}
			if code := run(args, &stdout, &stderr); code != exitOK {
				t.Fatalf("bench exited %d\nstderr:\n%s", code, stderr.String())
			}
			var res benchResult
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
			}
			if len(res.Scenarios) != tc.scenarios || (res.Throughput != nil) != tc.throughput || len(res.Targets) != tc.verdicts {
				t.Errorf("-only %s: %d scenarios, throughput %v, %d verdicts; want %d, %v, %d",
					tc.only, len(res.Scenarios), res.Throughput != nil, len(res.Targets), tc.scenarios, tc.throughput, tc.verdicts)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "-only", "both"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("bench -only both exited %d, want %d (usage)", code, exitUsage)
	}
}

// TestBenchAppAutocheckpoint: the application's autocheckpoint setting in
// the runs with the daemon is taken, reported, and validated.
func TestBenchAppAutocheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon")
	}
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "-dir", t.TempDir(), "-duration", "100ms", "-sync-interval", "20ms", "-only", "throughput", "-app-autocheckpoint", "0", "-json"}
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("bench exited %d\nstderr:\n%s", code, stderr.String())
	}
	var res benchResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if res.Settings.AppAutocheckpoint != 0 || res.Throughput == nil || res.Throughput.WithCommits == 0 {
		t.Errorf("settings %+v, throughput %+v: want autocheckpoint 0 and commits with the daemon", res.Settings, res.Throughput)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"bench", "-app-autocheckpoint", "-1"}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "-app-autocheckpoint") {
		t.Errorf("bench -app-autocheckpoint -1 exited %d (%s), want %d naming the flag", code, stderr.String(), exitUsage)
	}
}
