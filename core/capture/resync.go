package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/wal"
)

// resume re-establishes the captured position at start-up.
func (c *Capturer) resume(ctx context.Context) (Event, error) {
	ps, err := pageSize(ctx, c.held.conn)
	if err != nil {
		return Event{}, err
	}
	id, err := fileID(c.path)
	if err != nil {
		return Event{}, err
	}
	pos, ok, err := c.dir.LoadPosition()
	if ok {
		// Segments staged after the position belong to a capture that
		// crashed before committing; they were never uploaded and will be
		// captured again (or superseded by a new generation).
		c.pos = pos
		if err := c.dropUncommitted(); err != nil {
			return Event{}, err
		}
	}
	switch {
	case err != nil:
		c.log.Warn("local state is unreadable", "err", err)
		return c.newGeneration(ctx, "the local state was unreadable")
	case !ok:
		return c.newGeneration(ctx, "there is no previous replication state")
	case pos.PageSize != ps:
		c.log.Info("the page size changed", "from", pos.PageSize, "to", ps)
		return c.newGeneration(ctx, "the page size changed")
	case pos.DBFile != id:
		return c.newGeneration(ctx, "the database file was replaced")
	}
	hashes, err := c.replay(pos)
	if err != nil {
		c.log.Warn("the last captured state cannot be rebuilt", "err", err)
		return c.newGeneration(ctx, "the last captured state cannot be rebuilt")
	}
	c.pos, c.hashes = pos, hashes
	ev, continued, err := c.resumeLocked(ctx)
	if err != nil || continued {
		return ev, err
	}
	return c.catchUp(ctx, "the WAL no longer continues from the saved position (the database was checkpointed while replication was stopped)")
}

// resumeLocked checks, under the write lock, that the WAL continues from
// the saved position, reads what follows it and begins the held reader
// again; what it read is staged once the lock is released (under it only
// when too large to hold in memory). It reports whether the WAL
// continued; when it did not, the caller catches up.
//
// Why the lock: everywhere else the held reader began after the last
// capture, so a reset of the WAL under it can discard only captured
// frames. The reader begun at start-up began before this first capture.
// If the application wrote and then checkpointed the whole WAL while the
// daemon was stopped, that reader holds no read mark and keeps no writer
// from resetting the WAL; a commit between the check and the read would
// then discard frames never captured, and the capture would take the new
// WAL for an ordinary reset. Under the lock nothing commits; a reset
// before it changed the salts, and the check fails.
func (c *Capturer) resumeLocked(ctx context.Context) (Event, bool, error) {
	if err := c.lockWrite(ctx); err != nil {
		return Event{}, false, fmt.Errorf("%w%s", err, lockedHint(err, c.opts.BusyTimeout))
	}
	locked := true
	unlock := func() {
		if locked {
			c.unlockWrite()
			locked = false
		}
	}
	defer unlock()
	if !c.walContinues() {
		return Event{}, false, nil
	}
	if c.opts.beforeFirstCapture != nil {
		c.opts.beforeFirstCapture()
	}
	t, f, reason, err := c.readTail(ctx)
	if f != nil {
		defer f.Close()
	}
	if err != nil {
		return Event{}, false, err
	}
	if reason != "" {
		unlock() // a catch-up reads the whole database
		ev, err := c.catchUp(ctx, reason)
		return ev, true, err
	}
	ev := Event{Reason: "continued"}
	if t != nil {
		small, err := t.inMemory(c.resumeTailLimit())
		if err != nil {
			return Event{}, false, err
		}
		if !small {
			// Staging it under the lock would hold the application for as
			// long as that takes. The comparison of a catch-up runs after
			// a lock of a few milliseconds; the backlog becomes one
			// transaction.
			unlock()
			ev, err := c.catchUp(ctx, "the WAL written while replication was stopped is too large to read under the write lock")
			return ev, true, err
		}
	}
	if err := c.leapfrog(ctx); err != nil {
		return Event{}, false, err
	}
	unlock()
	if t != nil {
		seg, err := c.stageLate(ctx, t, "start-up")
		if err != nil {
			return Event{}, false, err
		}
		ev.Segment = &seg
	}
	return ev, true, nil
}

// resumeTailLimit bounds the pages the first capture after start-up reads
// into memory under the write lock.
func (c *Capturer) resumeTailLimit() int64 {
	if c.opts.resumeTailLimit > 0 {
		return c.opts.resumeTailLimit
	}
	return maxLockedTail
}

// replay rebuilds the page hashes at pos from the hash file and the staged
// segments after it.
func (c *Capturer) replay(pos localstate.Position) (*localstate.Hashes, error) {
	h, ok, err := c.dir.LoadHashes()
	if err != nil {
		return nil, err
	}
	if !ok || h.Generation != pos.Generation || h.TxID > pos.TxID || h.PageSize != pos.PageSize {
		return nil, errors.New("no page hash file for the current position")
	}
	c.savedHashes = h.TxID
	segs, err := c.dir.Segments(pos.Generation)
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		if s.Max <= h.TxID || s.Min > pos.TxID {
			continue
		}
		if s.Min != h.TxID+1 {
			return nil, fmt.Errorf("staged segments jump from txid %d to %d", h.TxID, s.Min)
		}
		if err := applySegment(s.Path, h); err != nil {
			return nil, err
		}
	}
	if h.TxID != pos.TxID || h.Checksum() != pos.Checksum {
		return nil, fmt.Errorf("replayed page hashes reach txid %d checksum %016x, the position says txid %d checksum %016x",
			h.TxID, h.Checksum(), pos.TxID, pos.Checksum)
	}
	return h, nil
}

func applySegment(path string, h *localstate.Hashes) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := segment.NewReader(f)
	if err != nil {
		return fmt.Errorf("staged segment %s: %w", path, err)
	}
	for {
		pgno, page, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("staged segment %s: %w", path, err)
		}
		h.Set(pgno, page)
	}
	h.Resize(r.Header().DBSize)
	h.TxID = r.Header().MaxTXID
	return nil
}

// dropUncommitted removes segments staged by a capture that crashed before
// it committed its position; they will be captured again.
func (c *Capturer) dropUncommitted() error {
	segs, err := c.dir.Segments(c.pos.Generation)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s.Max > c.pos.TxID {
			if err := c.dir.RemoveSegment(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// walContinues reports whether the WAL still holds the saved position.
func (c *Capturer) walContinues() bool {
	f, err := os.Open(c.walPath)
	if err != nil {
		return false
	}
	defer f.Close()
	hdr, err := wal.ReadHeader(f)
	if err != nil {
		return false
	}
	p := c.pos.WAL
	if hdr.Salt1 != p.Salt1 || hdr.Salt2 != p.Salt2 || hdr.CheckpointSeq != p.CheckpointSeq {
		return false
	}
	from := wal.Position{Offset: p.Offset, Salt1: p.Salt1, Salt2: p.Salt2, Checksum1: p.Checksum1, Checksum2: p.Checksum2}
	_, err = wal.Scan(f, hdr, from, nil)
	return err == nil
}

// syncPoint begins a fresh snapshot that includes every committed
// transaction and finds where the WAL ends at that snapshot. It holds the
// write lock only while it begins the reader and scans for the end.
func (c *Capturer) syncPoint(ctx context.Context) (localstate.WALPosition, error) {
	if err := c.lockWrite(ctx); err != nil {
		return localstate.WALPosition{}, err
	}
	defer c.unlockWrite()
	if err := c.leapfrog(ctx); err != nil {
		return localstate.WALPosition{}, err
	}
	f, err := os.Open(c.walPath)
	if errors.Is(err, os.ErrNotExist) {
		return localstate.WALPosition{}, nil
	}
	if err != nil {
		return localstate.WALPosition{}, err
	}
	defer f.Close()
	hdr, err := wal.ReadHeader(f)
	if err != nil {
		return localstate.WALPosition{}, nil // no header: an empty WAL
	}
	end, err := wal.Scan(f, hdr, wal.HeaderPosition(hdr), nil)
	if err != nil {
		return localstate.WALPosition{}, fmt.Errorf("find the end of the WAL: %w", err)
	}
	return localstate.WALPosition{
		Salt1: hdr.Salt1, Salt2: hdr.Salt2, CheckpointSeq: hdr.CheckpointSeq,
		Offset: end.Offset, Checksum1: end.Checksum1, Checksum2: end.Checksum2,
	}, nil
}

// catchUp re-establishes continuity by comparing the database with the
// page hashes of the last captured state: the pages that differ become one
// transaction. It starts a new generation when there is nothing to compare
// with.
func (c *Capturer) catchUp(ctx context.Context, reason string) (Event, error) {
	if c.hashes == nil {
		return c.newGeneration(ctx, reason)
	}
	walPos, err := c.syncPoint(ctx)
	if err != nil {
		return Event{}, err
	}
	rd := &c.held
	ps := c.pos.PageSize
	next := &localstate.Hashes{Generation: c.pos.Generation, PageSize: ps}
	var changed []uint32
	n, err := rd.readPages(ctx, ps, func(pgno uint32, page []byte) error {
		next.Set(pgno, page)
		if int(pgno) > len(c.hashes.Pages) || c.hashes.Pages[pgno-1] != next.Pages[pgno-1] {
			changed = append(changed, pgno)
		}
		return nil
	})
	if err != nil {
		return Event{}, err
	}
	next.Resize(n)
	pos := c.pos
	pos.WAL = walPos
	if len(changed) == 0 && n == c.pos.DBSize {
		c.log.Info("continuity re-established: the database is unchanged", "reason", reason, "txid", pos.TxID)
		if err := c.dir.SavePosition(pos); err != nil {
			return Event{}, err
		}
		c.pos = pos
		return Event{Reason: reason}, nil
	}
	now := time.Now()
	h := segment.Header{
		Kind: segment.KindSegment, Compression: c.opts.Compression, PageSize: ps,
		Generation: pos.Generation, MinTXID: pos.TxID + 1, MaxTXID: pos.TxID + 1,
		DBSize: n, FirstCommit: now.UnixNano(), LastCommit: now.UnixNano(),
		ChecksumBefore: segment.Checksum(c.pos.Checksum), ChecksumAfter: segment.Checksum(next.Checksum()),
		PageCount: uint32(len(changed)),
	}
	seg, err := c.dir.StageSegment(pos.Generation, h.MinTXID, h.MaxTXID, func(w io.Writer) error {
		sw, err := segment.NewWriter(w, h, segment.WriterOptions{})
		if err != nil {
			return err
		}
		for _, p := range changed {
			var page []byte
			if err := rd.conn.QueryRowContext(ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = ?", p).Scan(&page); err != nil {
				return fmt.Errorf("read page %d: %w", p, err)
			}
			if err := sw.WritePage(p, page); err != nil {
				return err
			}
		}
		return sw.Close()
	})
	if err != nil {
		return Event{}, fmt.Errorf("stage catch-up segment: %w", err)
	}
	next.TxID = h.MaxTXID
	pos.TxID, pos.CommitTime, pos.DBSize, pos.Checksum = h.MaxTXID, now, n, uint64(h.ChecksumAfter)
	if err := c.commit(pos, next, true); err != nil {
		return Event{}, err
	}
	c.log.Info("caught up", "reason", reason, "txid", pos.TxID, "changed_pages", len(changed), "db_pages", n)
	return Event{Segment: &seg, Reason: reason}, nil
}

// newGeneration starts a new generation with a snapshot of the database.
func (c *Capturer) newGeneration(ctx context.Context, reason string) (Event, error) {
	after := c.pos.Generation
	if c.opts.NewestElsewhere != nil {
		after = max(after, c.opts.NewestElsewhere(ctx))
	}
	walPos, err := c.syncPoint(ctx)
	if err != nil {
		return Event{}, err
	}
	rd := &c.held
	ps, err := pageSize(ctx, rd.conn)
	if err != nil {
		return Event{}, err
	}
	id, err := fileID(c.path)
	if err != nil {
		return Event{}, err
	}
	now := time.Now()
	named := generationTime(now, after)
	gen := NewGenerationID(named)
	if !named.Equal(now) {
		c.log.Warn("the clock reads earlier than the newest generation began; naming the new generation after it, so that restores take it as the newest",
			"newest", after, "generation", gen, "clock", now.UTC().Format(time.RFC3339Nano))
	}
	hashes := &localstate.Hashes{Generation: gen, PageSize: ps, TxID: 1}
	n, err := rd.readPages(ctx, ps, func(pgno uint32, page []byte) error {
		hashes.Set(pgno, page)
		return nil
	})
	if err != nil {
		return Event{}, err
	}
	hashes.Resize(n)
	sum := hashes.Checksum()
	h := segment.Header{
		Kind: segment.KindSnapshot, Compression: c.opts.Compression, PageSize: ps,
		Generation: gen, MinTXID: 1, MaxTXID: 1, DBSize: n,
		FirstCommit: now.UnixNano(), LastCommit: now.UnixNano(),
		ChecksumBefore: segment.Checksum(sum), ChecksumAfter: segment.Checksum(sum),
		PageCount: dataPages(ps, n),
	}
	snap, err := c.dir.StageSnapshot(gen, 1, func(w io.Writer) error {
		sw, err := segment.NewWriter(w, h, segment.WriterOptions{})
		if err != nil {
			return err
		}
		if _, err := rd.readPages(ctx, ps, sw.WritePage); err != nil {
			return err
		}
		return sw.Close()
	})
	if err != nil {
		return Event{}, fmt.Errorf("stage snapshot of new generation %s: %w", gen, err)
	}
	pos := localstate.Position{
		Generation: gen, TxID: 1, CommitTime: now, PageSize: ps, DBSize: n,
		Checksum: sum, DBFile: id, WAL: walPos,
	}
	if err := c.commit(pos, hashes, true); err != nil {
		return Event{}, err
	}
	c.log.Info("new generation", "generation", gen, "reason", reason, "db_pages", n)
	return Event{Snapshot: &snap, Reason: reason}, nil
}

// dataPages is the number of pages a snapshot of n pages holds: all but
// the lock-byte page.
func dataPages(pageSize, n uint32) uint32 {
	if lp := segment.LockPage(pageSize); n >= lp {
		return n - 1
	}
	return n
}
