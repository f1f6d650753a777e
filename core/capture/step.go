package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/wal"
)

// Step captures the transactions committed since the last capture, if
// any, as one staged segment, and moves the held snapshot forward.
func (c *Capturer) Step(ctx context.Context) (_ Event, err error) {
	defer c.releaseIfBusy(&err)
	if reason := c.broken; reason != "" {
		c.broken = ""
		return c.catchUp(ctx, reason)
	}
	t, f, reason, err := c.readTail(ctx)
	if f != nil {
		defer f.Close()
	}
	if err != nil {
		return Event{}, err
	}
	if reason != "" {
		return c.catchUp(ctx, reason)
	}
	if t == nil {
		return Event{}, nil
	}
	seg, err := c.stageTxns(ctx, t)
	if errors.Is(err, wal.ErrReset) {
		// A frame was overwritten after the scan.
		return c.catchUp(ctx, err.Error())
	}
	if err != nil {
		return Event{}, err
	}
	if err := c.leapfrog(ctx); err != nil {
		return Event{}, err
	}
	c.ckpt.grew(walFrames(t.end.Offset, c.pos.PageSize))
	return Event{Segment: &seg}, nil
}

// tail is what was committed after the captured position: its
// transactions and where each page's final image is.
type tail struct {
	hdr  wal.Header
	txns []wal.Txn
	end  wal.Position
	// final is the frame of each page's last image, for pages inside the
	// database's new size; pgnos lists them in order.
	final map[uint32]wal.Frame
	pgnos []uint32
	// page returns a page's final image.
	page func(wal.Frame) ([]byte, error)
}

// readTail reads the WAL from the captured position. It returns a nil
// tail when nothing was committed since, and a reason when continuity
// with the captured position cannot be proven (a catch-up is due). The
// returned file, when not nil, is the open WAL, which t.page reads: the
// caller closes it.
func (c *Capturer) readTail(ctx context.Context) (t *tail, f *os.File, reason string, err error) {
	if id, err := fileID(c.path); err != nil || id != c.pos.DBFile {
		return nil, nil, "", fmt.Errorf("%w: %s", ErrReplaced, c.path)
	}
	if !c.held.open {
		// A read failed to begin again after ending under the write lock:
		// since then the WAL may have started over more than once.
		return nil, nil, "no read transaction was held since the last capture", nil
	}
	f, err = os.Open(c.walPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, "", nil
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("open WAL: %w", err)
	}
	hdr, err := wal.ReadHeader(f)
	if err != nil {
		// No complete header yet: SQLite writes it with the first frame.
		return nil, f, "", nil
	}
	from, ok := c.continueFrom(hdr)
	if !ok {
		return nil, f, fmt.Sprintf("the WAL changed from salt-1 %d to %d between two reads", c.pos.WAL.Salt1, hdr.Salt1), nil
	}
	var txns []wal.Txn
	end, err := c.scanner.Scan(f, hdr, from, func(t wal.Txn) error {
		txns = append(txns, t)
		return nil
	})
	if errors.Is(err, wal.ErrReset) {
		return nil, f, err.Error(), nil
	}
	if err != nil {
		return nil, f, "", fmt.Errorf("read WAL: %w", err)
	}
	if len(txns) == 0 {
		return nil, f, "", nil
	}
	t = &tail{hdr: hdr, txns: txns, end: end, final: map[uint32]wal.Frame{}}
	newSize := txns[len(txns)-1].DBSize
	// The final image of every page, last write wins across transactions.
	for _, tx := range txns {
		for _, fr := range tx.Pages() {
			t.final[fr.Pgno] = fr
		}
	}
	for p := range t.final {
		if p <= newSize {
			t.pgnos = append(t.pgnos, p)
		}
	}
	slices.Sort(t.pgnos)
	t.page = func(fr wal.Frame) ([]byte, error) { return wal.ReadPage(f, hdr, fr) }
	return t, f, "", nil
}

// inMemory reads t's pages into memory, so that t can be staged after the
// WAL is gone. It reports false, reading nothing, when they would take
// more than limit bytes.
func (t *tail) inMemory(limit int64) (bool, error) {
	if int64(len(t.pgnos))*int64(t.hdr.PageSize) > limit {
		return false, nil
	}
	pages := make(map[uint32][]byte, len(t.pgnos))
	for _, p := range t.pgnos {
		page, err := t.page(t.final[p])
		if err != nil {
			return false, err
		}
		pages[p] = page
	}
	t.page = func(fr wal.Frame) ([]byte, error) { return pages[fr.Pgno], nil }
	return true, nil
}

// continueFrom returns where to resume reading a WAL whose header is hdr:
// the saved position when the WAL is the same, its first frame when it was
// reset exactly once since, and ok=false otherwise.
func (c *Capturer) continueFrom(hdr wal.Header) (wal.Position, bool) {
	p := c.pos.WAL
	switch {
	case p.Offset == 0:
		// The WAL had no header when captured: this is its first one, and
		// the held reader keeps it from being reset before we read it.
		return wal.HeaderPosition(hdr), true
	case hdr.Salt1 == p.Salt1 && hdr.Salt2 == p.Salt2:
		return wal.Position{Offset: p.Offset, Salt1: p.Salt1, Salt2: p.Salt2, Checksum1: p.Checksum1, Checksum2: p.Checksum2}, true
	case hdr.Salt1 == p.Salt1+1:
		// Every reset adds one to salt-1 (a WAL created anew gets random
		// salts). The checkpoint sequence is no help: each connection
		// writes its own count there.
		return wal.HeaderPosition(hdr), true
	}
	return wal.Position{}, false
}

// stageTxns writes t as one segment, durably, and commits the new
// position.
func (c *Capturer) stageTxns(ctx context.Context, t *tail) (localstate.StagedSegment, error) {
	hdr, txns, end, pgnos := t.hdr, t.txns, t.end, t.pgnos
	newSize := txns[len(txns)-1].DBSize
	// Pass 1: hash the new pages, for the checksum the header carries.
	next := c.hashes.Clone()
	for _, p := range pgnos {
		page, err := t.page(t.final[p])
		if err != nil {
			return localstate.StagedSegment{}, err
		}
		next.Set(p, page)
	}
	next.Resize(newSize)
	now := time.Now()
	h := segment.Header{
		Kind: segment.KindSegment, Compression: c.opts.Compression, PageSize: hdr.PageSize,
		Generation: c.pos.Generation, MinTXID: c.pos.TxID + 1, MaxTXID: c.pos.TxID + uint64(len(txns)),
		DBSize: newSize, FirstCommit: now.UnixNano(), LastCommit: now.UnixNano(),
		ChecksumBefore: segment.Checksum(c.pos.Checksum), ChecksumAfter: segment.Checksum(next.Checksum()),
		PageCount: uint32(len(pgnos)),
	}
	// Pass 2: write them.
	seg, err := c.dir.StageSegment(h.Generation, h.MinTXID, h.MaxTXID, func(w io.Writer) error {
		sw, err := segment.NewWriter(w, h, segment.WriterOptions{})
		if err != nil {
			return err
		}
		for _, p := range pgnos {
			page, err := t.page(t.final[p])
			if err != nil {
				return err
			}
			if err := sw.WritePage(p, page); err != nil {
				return err
			}
		}
		return sw.Close()
	})
	if err != nil {
		return localstate.StagedSegment{}, fmt.Errorf("stage segment %d-%d: %w", h.MinTXID, h.MaxTXID, err)
	}
	next.TxID = h.MaxTXID
	pos := c.pos
	pos.TxID = h.MaxTXID
	pos.CommitTime = now
	pos.DBSize = newSize
	pos.Checksum = uint64(h.ChecksumAfter)
	pos.WAL = localstate.WALPosition{
		Salt1: hdr.Salt1, Salt2: hdr.Salt2, CheckpointSeq: hdr.CheckpointSeq,
		Offset: end.Offset, Checksum1: end.Checksum1, Checksum2: end.Checksum2,
	}
	if err := c.commit(pos, next, false); err != nil {
		return localstate.StagedSegment{}, err
	}
	return seg, nil
}

// commit makes pos the captured position (durably) with hashes as its
// page hashes, saving the hash file now and then.
func (c *Capturer) commit(pos localstate.Position, hashes *localstate.Hashes, saveHashes bool) error {
	if err := c.dir.SavePosition(pos); err != nil {
		return fmt.Errorf("save position: %w", err)
	}
	c.pos, c.hashes = pos, hashes
	if saveHashes || pos.TxID-c.savedHashes >= c.opts.HashSaveInterval {
		if err := c.saveHashes(); err != nil {
			return fmt.Errorf("save page hashes: %w", err)
		}
	}
	return nil
}
