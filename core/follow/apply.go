package follow

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// tempDir makes a temporary directory beside the database.
func (f *Follower) tempDir() (string, error) {
	return os.MkdirTemp(filepath.Dir(f.cfg.Path), "."+filepath.Base(f.cfg.Path)+".follow-")
}

// applySegment downloads segment o (verified in full) and applies it as
// one write transaction. It returns the number of pages written.
func (f *Follower) applySegment(ctx context.Context, o replica.Object) (int, error) {
	dir, err := f.tempDir()
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	file, err := os.Create(filepath.Join(dir, "segment"))
	if err != nil {
		return 0, err
	}
	defer file.Close()
	h, err := f.r.Download(ctx, o, file)
	if err != nil {
		return 0, err
	}
	pos := f.Position()
	if h.PageSize != f.pageSize {
		return 0, fmt.Errorf("%w: %s has page size %d, the local database %d", ErrFatal, o, h.PageSize, f.pageSize)
	}
	if h.ChecksumBefore != pos.Checksum {
		return 0, fmt.Errorf("%w: %s starts from database checksum %s, but txid %d has %s", errMismatch, o, h.ChecksumBefore, pos.TxID, pos.Checksum)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	rd, err := segment.NewReaderOptions(file, f.r.ReaderOptions())
	if err != nil {
		return 0, err
	}
	tx, err := f.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.rollback()
	lock := segment.LockPage(f.pageSize)
	n := 0
	for {
		pgno, page, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if pgno == lock {
			continue
		}
		if err := tx.extend(pgno - 1); err != nil {
			return 0, err
		}
		if err := tx.write(pgno, page); err != nil {
			return 0, err
		}
		n++
	}
	if err := tx.resize(h.DBSize); err != nil {
		return 0, err
	}
	if tx.sum != h.ChecksumAfter {
		return 0, fmt.Errorf("%w: applying %s gives checksum %s, want %s (nothing was committed)", errMismatch, o, tx.sum, h.ChecksumAfter)
	}
	if err := tx.commit(); err != nil {
		return 0, err
	}
	f.setPosition(Position{Generation: h.Generation, TxID: h.MaxTXID, Checksum: h.ChecksumAfter, Pages: h.DBSize, CommitTime: h.LastCommitTime()})
	f.update(func(s *Stats) { s.Segments++ })
	f.log.Debug("follow: applied segment", "segment", o.String(), "pages", n, "db_pages", h.DBSize, "checksum", h.ChecksumAfter.String())
	return n, nil
}

// writeTx is one write transaction through sqlite_dbpage, tracking the
// page hashes and the checksum it produces; they replace the follower's
// only on commit.
// Page-1 header fields SQLite rewrites at commit (see Follower.counters).
func getCounters(page1 []byte) (c [8]byte) {
	copy(c[:4], page1[24:28])
	copy(c[4:], page1[92:96])
	return c
}

func setCounters(page1 []byte, c [8]byte) {
	copy(page1[24:28], c[:4])
	copy(page1[92:96], c[4:])
}

// pageHash is segment.PageHash of the replica's version of a local page:
// page 1's counters and schema cookie are put back to the replica's (data
// is modified).
func (f *Follower) pageHash(pgno uint32, data []byte) uint64 {
	if pgno == 1 && len(data) >= 100 {
		setCounters(data, f.counters)
		binary.BigEndian.PutUint32(data[40:44], schemaCookie(data)-f.delta)
	}
	return segment.PageHash(pgno, data)
}

type writeTx struct {
	f        *Follower
	ctx      context.Context
	hashes   []uint64
	sum      segment.Checksum
	counters [8]byte
	delta    uint32
	page1    []byte
	stmt     *sql.Stmt
	done     bool
}

// begin takes the write lock (BEGIN IMMEDIATE) and checks, inside the
// transaction, that no other connection committed since the last look.
func (f *Follower) begin(ctx context.Context) (*writeTx, error) {
	if _, err := f.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		// A BEGIN cut short by cancellation may still have taken the lock.
		_, _ = f.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return nil, fmt.Errorf("begin a write transaction on %s: %w", f.cfg.Path, err)
	}
	tx := &writeTx{f: f, ctx: ctx, hashes: append([]uint64(nil), f.hashes...), sum: f.sum, counters: f.counters, delta: f.delta}
	changed, err := f.changedLocally(ctx)
	if err == nil && changed {
		err = errLocalWrite
	}
	if err == nil {
		tx.stmt, err = f.conn.PrepareContext(ctx, "INSERT INTO sqlite_dbpage(pgno, data) VALUES(?, ?)")
	}
	if err != nil {
		tx.rollback()
		return nil, err
	}
	return tx, nil
}

func (tx *writeTx) rollback() {
	if tx.done {
		return
	}
	tx.done = true
	if tx.stmt != nil {
		tx.stmt.Close()
	}
	if _, err := tx.f.conn.ExecContext(context.WithoutCancel(tx.ctx), "ROLLBACK"); err != nil {
		tx.f.log.Warn("follow: rollback", "err", err)
	}
}

func (tx *writeTx) commit() error {
	tx.stmt.Close()
	tx.done = true
	if _, err := tx.f.conn.ExecContext(context.WithoutCancel(tx.ctx), "COMMIT"); err != nil {
		tx.f.conn.ExecContext(context.WithoutCancel(tx.ctx), "ROLLBACK")
		return fmt.Errorf("commit to %s: %w", tx.f.cfg.Path, err)
	}
	tx.f.hashes, tx.f.sum, tx.f.counters, tx.f.delta = tx.hashes, tx.sum, tx.counters, tx.delta
	// Our own commit does not change data_version, but re-read it so that
	// the comparison always starts from what this connection saw last.
	return tx.f.conn.QueryRowContext(tx.ctx, "PRAGMA data_version").Scan(&tx.f.dataVersion)
}

// write sets page pgno (at most one past the end) to the replica's page;
// page 1 is written with the local schema cookie (see Follower.delta).
func (tx *writeTx) write(pgno uint32, page []byte) error {
	data := page
	if pgno == 1 && len(page) >= 100 {
		tx.counters = getCounters(page)
		data = append(tx.page1[:0], page...)
		tx.page1 = data
		binary.BigEndian.PutUint32(data[40:44], schemaCookie(page)+tx.delta)
	}
	if _, err := tx.stmt.ExecContext(tx.ctx, pgno, data); err != nil {
		return fmt.Errorf("write page %d of %s: %w", pgno, tx.f.cfg.Path, err)
	}
	h := segment.PageHash(pgno, page)
	if pgno == segment.LockPage(tx.f.pageSize) {
		h = 0
	}
	if int(pgno) > len(tx.hashes) {
		tx.hashes = append(tx.hashes, 0)
	}
	tx.sum ^= segment.Checksum(tx.hashes[pgno-1] ^ h)
	tx.hashes[pgno-1] = h
	return nil
}

// extend grows the database to n pages with zeroed pages, as a restore's
// file would be (pages a segment does not hold beyond the old end).
func (tx *writeTx) extend(n uint32) error {
	var zero []byte
	for uint32(len(tx.hashes)) < n {
		if zero == nil {
			zero = make([]byte, tx.f.pageSize)
		}
		if err := tx.write(uint32(len(tx.hashes))+1, zero); err != nil {
			return err
		}
	}
	return nil
}

// resize makes the database exactly n pages long.
func (tx *writeTx) resize(n uint32) error {
	if err := tx.extend(n); err != nil {
		return err
	}
	if uint32(len(tx.hashes)) <= n {
		return nil
	}
	// Inserting a NULL page pgno truncates the database to pgno-1 pages.
	if _, err := tx.stmt.ExecContext(tx.ctx, n+1, nil); err != nil {
		return fmt.Errorf("truncate %s to %d pages: %w", tx.f.cfg.Path, n, err)
	}
	for _, h := range tx.hashes[n:] {
		tx.sum ^= segment.Checksum(h)
	}
	tx.hashes = tx.hashes[:n]
	return nil
}
