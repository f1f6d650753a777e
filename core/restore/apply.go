package restore

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// The rebuild, shaped for throughput. The first object (the snapshot,
// usually most of the bytes) streams from the replica straight into the
// database file, verified as it goes, never stored on its own; meanwhile
// the segments after it download in parallel into temporary files, and
// each is applied, in order, as soon as it is there and removed at once
// (so the kernel need not write it to disk). An object's pages come
// sorted, and go out as a few large writes rather than a system call per
// page, each while the pages after it are read and verified. The
// read-back checksum, the fsync and the integrity check do not depend on
// one another and run at once. Memory stays bounded whatever
// the database's size: a few buffers of about a megabyte each.

// runBytes bounds one write of consecutive pages.
const runBytes = 1 << 20

// downloads is the objects of a plan being fetched into a temporary
// directory.
type downloads struct {
	files  []string
	done   []chan error // each receives its object's outcome once
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// download starts fetching every object of plan but the first (which is
// streamed) into tmpDir, in plan order and at most parallel at once, each
// verified in full by the replica. close stops what is still running and
// waits for it.
func download(ctx context.Context, r *replica.Replica, plan Plan, tmpDir string, parallel int) *downloads {
	ctx, cancel := context.WithCancel(ctx)
	d := &downloads{files: make([]string, len(plan.Objects)), done: make([]chan error, len(plan.Objects)), cancel: cancel}
	for i := range plan.Objects {
		d.files[i] = filepath.Join(tmpDir, fmt.Sprintf("%06d", i))
		d.done[i] = make(chan error, 1)
	}
	sem := make(chan struct{}, parallel)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for i, o := range plan.Objects {
			if i == 0 {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for j := i; j < len(plan.Objects); j++ {
					d.done[j] <- ctx.Err()
				}
				return
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer func() { <-sem }()
				d.done[i] <- fetch(ctx, r, o, d.files[i])
			}()
		}
	}()
	return d
}

func fetch(ctx context.Context, r *replica.Replica, o replica.Object, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = r.Download(ctx, o, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// wait returns object i's download outcome.
func (d *downloads) wait(i int) error { return <-d.done[i] }

func (d *downloads) close() {
	d.cancel()
	d.wg.Wait()
}

// apply writes the objects' pages into a new database file as they
// arrive (the first streamed from r, the others from dl), checking that the chain is unbroken (each object starts from the
// checksum the previous one ended with), then proves the file is the
// database the last object promises: its checksum read back from the
// file, and check (SQLite's integrity check; nil skips it), while the file
// is fsynced.
func apply(ctx context.Context, r *replica.Replica, dbPath string, plan Plan, dl *downloads, check func(context.Context, string) error) (Result, error) {
	db, err := os.OpenFile(dbPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Result{}, err
	}
	defer db.Close()
	w := newPageWriter(db)
	var last segment.Header
	for i, o := range plan.Objects {
		var h segment.Header
		if i == 0 {
			h, err = r.Stream(ctx, o, w.writeAll)
		} else if err = dl.wait(i); err == nil {
			h, err = applyFile(w, dl.files[i], r.ReaderOptions())
			// Its pages are in the database file now: removed before it
			// is written back, the temporary copy costs no disk write.
			_ = os.Remove(dl.files[i])
		}
		if err != nil {
			return Result{}, fmt.Errorf("apply %s: %w", o, err)
		}
		if i > 0 && h.ChecksumBefore != last.ChecksumAfter {
			return Result{}, fmt.Errorf("%w: %s starts from database checksum %s, but the chain before it ends at %s",
				segment.ErrCorrupt, o, h.ChecksumBefore, last.ChecksumAfter)
		}
		last = h
	}
	size := int64(last.DBSize) * int64(last.PageSize)
	if err := db.Truncate(size); err != nil {
		return Result{}, err
	}
	var sum segment.Checksum
	var sumErr, syncErr, checkErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sum, sumErr = fileChecksum(db, last.PageSize, last.DBSize) }()
	go func() { defer wg.Done(); syncErr = db.Sync() }()
	if check != nil {
		wg.Add(1)
		go func() { defer wg.Done(); checkErr = check(ctx, dbPath) }()
	}
	wg.Wait()
	switch {
	case sumErr != nil:
		return Result{}, sumErr
	case sum != last.ChecksumAfter:
		return Result{}, fmt.Errorf("restored database has checksum %s, but txid %d of generation %s has %s: the replica is inconsistent; nothing was written to the output",
			sum, last.MaxTXID, last.Generation, last.ChecksumAfter)
	case checkErr != nil:
		return Result{}, checkErr
	case syncErr != nil:
		return Result{}, fmt.Errorf("fsync the restored database: %w", syncErr)
	}
	return Result{Generation: last.Generation, TxID: last.MaxTXID, CommitTime: last.LastCommitTime(), Checksum: sum, Pages: last.DBSize}, nil
}

// applyFile writes the pages of the object in the file at path.
func applyFile(w *pageWriter, path string, ropts segment.ReaderOptions) (segment.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return segment.Header{}, err
	}
	defer f.Close()
	r, err := segment.NewReaderOptions(f, ropts)
	if err != nil {
		return segment.Header{}, err
	}
	return r.Header(), w.writeAll(r)
}

// pageWriter gathers runs of consecutive pages into one write. An
// object's pages come sorted, so a snapshot becomes a few hundred large
// sequential writes instead of one system call per page. A write runs
// while the next run is read and verified: two buffers take turns.
type pageWriter struct {
	f        *os.File
	pageSize int64
	buf      []byte // pages first, first+1, ...
	spare    []byte // the other buffer, being written while pending
	first    uint32
	n        uint32
	pending  chan error // the write in flight, if any
}

func newPageWriter(f *os.File) *pageWriter {
	return &pageWriter{f: f, buf: make([]byte, 0, runBytes), spare: make([]byte, 0, runBytes)}
}

// writeAll writes every page of r, to its end (where r verifies the whole
// object). Called again for the same object, after a failure, it starts
// over: what it buffered is dropped and the pages are written again.
// When it returns, no write is in flight.
func (w *pageWriter) writeAll(r *segment.Reader) error {
	if err := w.wait(); err != nil {
		return err
	}
	w.buf, w.n = w.buf[:0], 0
	w.pageSize = int64(r.Header().PageSize)
	for {
		pgno, page, err := r.Next()
		if err == io.EOF {
			if err := w.flush(); err != nil {
				return err
			}
			return w.wait()
		}
		if err == nil {
			err = w.add(pgno, page)
		}
		if err != nil {
			if werr := w.wait(); werr != nil {
				return werr
			}
			return err
		}
	}
}

func (w *pageWriter) add(pgno uint32, page []byte) error {
	if w.n > 0 && (pgno != w.first+w.n || len(w.buf)+len(page) > cap(w.buf)) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.n == 0 {
		w.first = pgno
	}
	w.buf = append(w.buf, page...)
	w.n++
	return nil
}

// flush starts writing the gathered run, once the write before it is done.
func (w *pageWriter) flush() error {
	if w.n == 0 {
		return nil
	}
	if err := w.wait(); err != nil {
		return err
	}
	b, off, first, last := w.buf, int64(w.first-1)*w.pageSize, w.first, w.first+w.n-1
	done := make(chan error, 1)
	go func() {
		_, err := w.f.WriteAt(b, off)
		if err != nil {
			err = fmt.Errorf("write pages %d-%d: %w", first, last, err)
		}
		done <- err
	}()
	w.pending = done
	w.buf, w.spare, w.n = w.spare[:0], b, 0
	return nil
}

// wait waits for the write in flight, if any, and returns its outcome.
func (w *pageWriter) wait() error {
	if w.pending == nil {
		return nil
	}
	err := <-w.pending
	w.pending = nil
	return err
}

// fileChecksum computes the database checksum of the file's first n
// pages, reading them back about a megabyte at a time.
func fileChecksum(f *os.File, pageSize, n uint32) (segment.Checksum, error) {
	var sum segment.Checksum
	ps := uint64(pageSize)
	per := max(runBytes/ps, 1)
	buf := make([]byte, per*ps)
	lock := uint64(segment.LockPage(pageSize))
	for p := uint64(1); p <= uint64(n); {
		k := min(per, uint64(n)-p+1)
		b := buf[:k*ps]
		if _, err := f.ReadAt(b, int64((p-1)*ps)); err != nil {
			return 0, fmt.Errorf("read back pages %d-%d: %w", p, p+k-1, err)
		}
		for i := uint64(0); i < k; i++ {
			if p+i != lock {
				sum = sum.AddPage(uint32(p+i), b[i*ps:(i+1)*ps])
			}
		}
		p += k
	}
	return sum, nil
}
