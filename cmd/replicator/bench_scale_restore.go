package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/replicate"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// The restore part of "bench scale": a database of a given size is
// replicated to a local directory (a snapshot, then transactions that each
// rewrite part of a random row), then restored by "replicator restore" as
// a child process, with each -integrity-check level, and the same
// file is copied with fsync, in the same run, for comparison.

// scaleRestore is the restore measurement at one database size.
type scaleRestore struct {
	Bytes        int64      `json:"bytes"`
	Transactions int        `json:"transactions"`
	Objects      int        `json:"objects"` // snapshots and segments in the replica
	Copy         restoreRun `json:"copy_fsync"`
	Default      restoreRun `json:"restore"` // -integrity-check full
	Quick        restoreRun `json:"restore_quick_check"`
	NoCheck      restoreRun `json:"restore_no_integrity_check"`
}

// restoreRun is one timed run. Ratio is the throughput over the copy's.
type restoreRun struct {
	Seconds   float64 `json:"seconds"`
	MBs       float64 `json:"mb_per_s"` // 10^6 bytes per second
	Ratio     float64 `json:"ratio_to_copy,omitempty"`
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"` // restore process plus its plugin process
}

// restoreRowBytes is about what one row takes in the database: a random
// 400-byte blob (incompressible), 400 zero bytes (compressible), a random
// integer with an index on it.
const restoreRowBytes = 850

// measureRestore runs the restore measurement for a database of size
// bytes with txns transactions after the snapshot, working under dir.
func measureRestore(ctx context.Context, e *env, dir string, size int64, txns int, syncInterval time.Duration) (scaleRestore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return scaleRestore{}, err
	}
	src := filepath.Join(dir, "src.db")
	rows, err := buildRestoreDB(ctx, src, size)
	if err != nil {
		return scaleRestore{}, err
	}
	repDir := filepath.Join(dir, "replica")
	if err := replicateRestoreDB(ctx, e, src, repDir, rows, txns, syncInterval); err != nil {
		return scaleRestore{}, err
	}
	res := scaleRestore{Transactions: txns}
	res.Objects, err = countObjects(repDir)
	if err != nil {
		return res, err
	}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	out := filepath.Join(dir, "restored.db")
	var copies, defaults, quicks, noChecks []restoreRun
	for i := range restoreRuns {
		run, err := settled(func() (restoreRun, error) { return timeRestore(ctx, self, repDir, out, "full") })
		if err != nil {
			return res, err
		}
		defaults = append(defaults, run)
		if i == 0 {
			fi, err := os.Stat(out)
			if err != nil {
				return res, err
			}
			res.Bytes = fi.Size()
		}
		if run, err = settled(func() (restoreRun, error) { return timeCopy(out, filepath.Join(dir, "copy.db")) }); err != nil {
			return res, err
		}
		copies = append(copies, run)
		if err := os.Remove(out); err != nil {
			return res, err
		}
		for _, level := range []struct {
			name string
			runs *[]restoreRun
		}{{"quick", &quicks}, {"none", &noChecks}} {
			if run, err = settled(func() (restoreRun, error) { return timeRestore(ctx, self, repDir, out, level.name) }); err != nil {
				return res, err
			}
			*level.runs = append(*level.runs, run)
			if err := os.Remove(out); err != nil {
				return res, err
			}
		}
	}
	res.Copy, res.Default, res.Quick, res.NoCheck = medianRun(copies), medianRun(defaults), medianRun(quicks), medianRun(noChecks)
	res.Copy.MBs = float64(res.Bytes) / 1e6 / res.Copy.Seconds
	for _, r := range res.restores() {
		r.MBs = float64(res.Bytes) / 1e6 / r.Seconds
		r.Ratio = r.MBs / res.Copy.MBs
	}
	return res, nil
}

// restores returns the restore runs, one per -integrity-check level, in
// the order full, quick, none.
func (s *scaleRestore) restores() []*restoreRun {
	return []*restoreRun{&s.Default, &s.Quick, &s.NoCheck}
}

// buildRestoreDB creates a WAL-mode database of about size bytes and
// returns its row count. It is checkpointed and its WAL truncated, so the
// daemon starts from a plain file, as it would on an existing database.
func buildRestoreDB(ctx context.Context, path string, size int64) (int64, error) {
	db, err := openWAL(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, b BLOB NOT NULL, c BLOB NOT NULL); CREATE INDEX t_k ON t (k)"); err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	const batch = 20000
	var rows int64
	for {
		var pages, pageSize int64
		if err := db.QueryRowContext(ctx, "SELECT page_count, page_size FROM pragma_page_count(), pragma_page_size()").Scan(&pages, &pageSize); err != nil {
			return 0, err
		}
		if pages*pageSize >= size {
			break
		}
		n := min(batch, max((size-pages*pageSize)/restoreRowBytes, 1))
		if _, err := db.ExecContext(ctx, `WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM s WHERE x < ?)
			INSERT INTO t (k, b, c) SELECT random(), randomblob(400), zeroblob(400) FROM s`, n); err != nil {
			return 0, fmt.Errorf("fill %s: %w", path, err)
		}
		rows += n
	}
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return 0, err
	}
	return rows, nil
}

// replicateRestoreDB replicates src to a local directory with an
// in-process daemon: the first snapshot, then txns transactions each
// rewriting a random row's blob, all uploaded before it returns.
func replicateRestoreDB(ctx context.Context, e *env, src, repDir string, rows int64, txns int, syncInterval time.Duration) error {
	p, err := firstPartyPlugin(e, "fs")
	if err != nil {
		return err
	}
	defer p.Close()
	st, err := p.Open(ctx, map[string]string{"path": repDir})
	if err != nil {
		return fmt.Errorf("open the fs plugin: %w", err)
	}
	defer st.Close()
	d, err := replicate.Open(ctx, replicate.Config{Path: src, Replicas: []*replica.Replica{replica.New("file", st, e.log)}, SyncInterval: syncInterval, Compression: segment.DefaultCompression, Logger: e.log})
	if err != nil {
		return fmt.Errorf("replicate %s: %w", src, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	err = func() error {
		if err := d.Sync(ctx); err != nil {
			return fmt.Errorf("first snapshot of %s: %w", src, err)
		}
		db, err := openWAL(src)
		if err != nil {
			return err
		}
		defer db.Close()
		upd, err := db.PrepareContext(ctx, "UPDATE t SET b = randomblob(400) WHERE id = ?")
		if err != nil {
			return err
		}
		defer upd.Close()
		for i := 0; i < txns; i++ {
			if _, err := upd.ExecContext(ctx, 1+rand.Int64N(rows)); err != nil {
				return fmt.Errorf("transaction %d on %s: %w", i+1, src, err)
			}
		}
		return d.Sync(ctx)
	}()
	cancel()
	if rerr := <-done; rerr != nil && !errors.Is(rerr, context.Canceled) {
		err = errors.Join(err, fmt.Errorf("daemon: %w", rerr))
	}
	return err
}

// countObjects counts the snapshots and segments under a local replica.
func countObjects(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".snapshot") || strings.HasSuffix(path, ".segment")) {
			n++
		}
		return nil
	})
	return n, err
}

// restoreRuns is how many times each of the three is timed; the median
// is reported. One run of each moved by a factor of two or more from one
// run to the next on a shared machine, the copy's fsync most of all.
const restoreRuns = 3

// settled runs a timed step after flushing every file system's dirty
// data, so that no step pays for writes an earlier one left behind (the
// source database, the replica, the last restore or copy).
func settled(f func() (restoreRun, error)) (restoreRun, error) {
	syscall.Sync()
	return f()
}

// medianRun returns the run of median time, with the highest peak memory
// of all: the bound on memory must hold for every run.
func medianRun(runs []restoreRun) restoreRun {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b restoreRun) int { return cmp.Compare(a.Seconds, b.Seconds) })
	m := sorted[len(sorted)/2]
	for _, r := range runs {
		m.PeakRSSMB = max(m.PeakRSSMB, r.PeakRSSMB)
	}
	return m
}

// timeRestore runs "replicator restore" as a child process and measures
// its time and the peak resident memory of it and its plugin process.
func timeRestore(ctx context.Context, self, repDir, out, check string) (restoreRun, error) {
	args := []string{"restore", "-o", out, "-integrity-check", check, "file://" + repDir}
	cmd := exec.CommandContext(ctx, self, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return restoreRun{}, err
	}
	// Sample the tree's peaks while it runs: each process's VmHWM is its
	// own peak, so the last value seen before it exits counts.
	peaks := map[procKey]int64{}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if s, err := sampleTree(cmd.Process.Pid); err == nil {
				for k, p := range s.procs {
					peaks[k] = max(peaks[k], p.hwmKB)
				}
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		return restoreRun{}, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	// The restore process's own peak, exactly, from the kernel.
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		for k := range peaks {
			if k.pid == cmd.Process.Pid {
				peaks[k] = max(peaks[k], ru.Maxrss)
			}
		}
	}
	var peak int64
	for _, v := range peaks {
		peak += v
	}
	return restoreRun{Seconds: elapsed.Seconds(), PeakRSSMB: float64(peak) / 1024}, nil
}

// timeCopy copies src to dst and fsyncs it, as "cp" followed by "sync
// FILE" would (io.Copy between files uses copy_file_range, as cp does).
func timeCopy(src, dst string) (restoreRun, error) {
	start := time.Now()
	in, err := os.Open(src)
	if err != nil {
		return restoreRun{}, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return restoreRun{}, err
	}
	defer os.Remove(dst)
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return restoreRun{}, fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return restoreRun{}, err
	}
	if err := out.Close(); err != nil {
		return restoreRun{}, err
	}
	return restoreRun{Seconds: time.Since(start).Seconds()}, nil
}
