package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sqlitereplicator/replicator/core/segment"
)

// lostTrack is the reason of a new generation begun because a snapshot
// found the database different from what capture recorded.
const lostTrack = "capture lost track of the database"

var errLostTrack = errors.New(lostTrack)

// Snapshot captures what is pending and then writes a snapshot of the
// database at the captured txid to the state directory. The snapshot is
// read from a read transaction begun under the write lock right after the
// capture, so it is page-identical to the database at that txid; the
// application is blocked only for that moment, not for the read. The
// snapshot's checksum must equal the one capture computed incrementally,
// which checks the whole capture chain against the database itself.
func (c *Capturer) Snapshot(ctx context.Context) (_ Event, err error) {
	defer c.releaseIfBusy(&err)
	if err := c.lockWrite(ctx); err != nil {
		return Event{}, err
	}
	ev, err := c.Step(ctx)
	if err == nil {
		err = c.leapfrog(ctx)
	}
	c.unlockWrite()
	if err != nil {
		return Event{}, err
	}
	rd := &c.held
	pos := c.pos
	h := segment.Header{
		Kind: segment.KindSnapshot, Compression: c.opts.Compression, PageSize: pos.PageSize,
		Generation: pos.Generation, MinTXID: pos.TxID, MaxTXID: pos.TxID, DBSize: pos.DBSize,
		FirstCommit: pos.CommitTime.UnixNano(), LastCommit: pos.CommitTime.UnixNano(),
		ChecksumBefore: segment.Checksum(pos.Checksum), ChecksumAfter: segment.Checksum(pos.Checksum),
		PageCount: dataPages(pos.PageSize, pos.DBSize),
	}
	start := time.Now()
	snap, err := c.dir.StageSnapshot(pos.Generation, pos.TxID, func(w io.Writer) error {
		sw, err := segment.NewWriter(w, h, segment.WriterOptions{})
		if err != nil {
			return err
		}
		var sum segment.Checksum
		n, err := rd.readPages(ctx, pos.PageSize, func(pgno uint32, page []byte) error {
			sum = sum.AddPage(pgno, page)
			return sw.WritePage(pgno, page)
		})
		if err != nil {
			return err
		}
		if n != pos.DBSize || uint64(sum) != pos.Checksum {
			return fmt.Errorf("the database at txid %d has %d pages and checksum %s, but capture recorded %d pages and checksum %016x: %w",
				pos.TxID, n, sum, pos.DBSize, pos.Checksum, errLostTrack)
		}
		return sw.Close()
	})
	if errors.Is(err, errLostTrack) {
		// The replica's chain no longer describes the database (the file
		// was written outside SQLite, or a capture went wrong): carrying
		// it on would only extend a history no restore can trust, and
		// every later snapshot would fail the same way. Start again from
		// what the database holds.
		c.log.Error("the database differs from what was captured; starting a new generation", "generation", pos.Generation, "txid", pos.TxID, "err", err)
		return c.newGeneration(ctx, lostTrack)
	}
	if err != nil {
		return ev, fmt.Errorf("snapshot of generation %s at txid %d: %w", pos.Generation, pos.TxID, err)
	}
	c.log.Debug("snapshot", "generation", pos.Generation, "txid", pos.TxID, "bytes", snap.Size, "took", time.Since(start))
	ev.Snapshot = &snap
	return ev, nil
}
