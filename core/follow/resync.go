package follow

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/segment"
)

// resync restores the latest state of the replica into a temporary file,
// then makes the local database equal to it in one write transaction that
// writes only the pages that differ.
func (f *Follower) resync(ctx context.Context) error {
	dir, err := f.tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "db")
	res, err := restore.Run(ctx, f.r, restore.Target{}, path, restore.Options{Logger: f.cfg.Logger})
	if err != nil {
		return fmt.Errorf("re-sync: %w", err)
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if res.Pages == 0 || fi.Size()%int64(res.Pages) != 0 || uint32(fi.Size()/int64(res.Pages)) != f.pageSize {
		return fmt.Errorf("%w: the replica's database (generation %s) has %d pages in %d bytes; the local database has page size %d, and a page size cannot change atomically for readers: stop, remove %s and follow again",
			ErrFatal, res.Generation, res.Pages, fi.Size(), f.pageSize, f.cfg.Path)
	}
	if err := f.replaceWith(ctx, src, res); err != nil {
		return fmt.Errorf("re-sync: %w", err)
	}
	f.setPosition(Position{Generation: res.Generation, TxID: res.TxID, Checksum: res.Checksum, Pages: res.Pages, CommitTime: res.CommitTime})
	f.update(func(s *Stats) { s.Resyncs++ })
	f.saveState()
	f.log.Info("follow: re-synced", "generation", res.Generation, "txid", res.TxID, "checksum", res.Checksum.String())
	return nil
}

func schemaCookie(page1 []byte) uint32 { return binary.BigEndian.Uint32(page1[40:44]) }

// replaceWith writes the pages of src that differ from the local database,
// and its size, in one transaction, verifying the checksum before commit.
func (f *Follower) replaceWith(ctx context.Context, src *os.File, res restore.Result) error {
	tx, err := f.begin(ctx)
	if errors.Is(err, errLocalWrite) {
		// Inside our write lock nobody else can change it now: re-read.
		tx, err = f.beginAfterReread(ctx)
	}
	if err != nil {
		return err
	}
	defer tx.rollback()
	// Recompute the hashes from the database itself (it may have been
	// written locally), inside the write transaction.
	if err := f.rereadInto(ctx, tx); err != nil {
		return err
	}
	var cur1 []byte
	if err := f.conn.QueryRowContext(ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = 1").Scan(&cur1); err != nil || len(cur1) < 100 {
		return fmt.Errorf("read page 1: %v", err)
	}
	// The new content may have another schema under the same cookie, and
	// readers would keep their cached schema: the local cookie goes up by
	// one at every re-sync, and stays that far from the replica's.
	var new1 [100]byte
	if _, err := src.ReadAt(new1[:], 0); err != nil {
		return err
	}
	tx.delta = schemaCookie(cur1[:]) + 1 - schemaCookie(new1[:])
	lock := segment.LockPage(f.pageSize)
	page := make([]byte, f.pageSize)
	for p := uint32(1); p <= res.Pages; p++ {
		if p == lock {
			if err := tx.extend(p); err != nil {
				return err
			}
			continue
		}
		if _, err := src.ReadAt(page, int64(p-1)*int64(f.pageSize)); err != nil {
			return err
		}
		h := segment.PageHash(p, page)
		if p != 1 && int(p) <= len(tx.hashes) && tx.hashes[p-1] == h {
			continue
		}
		if err := tx.extend(p - 1); err != nil {
			return err
		}
		if err := tx.write(p, page); err != nil {
			return err
		}
	}
	if err := tx.resize(res.Pages); err != nil {
		return err
	}
	if tx.sum != res.Checksum {
		return fmt.Errorf("%w: the re-synced database would have checksum %s, want %s (nothing was committed)", segment.ErrCorrupt, tx.sum, res.Checksum)
	}
	return tx.commit()
}

// beginAfterReread starts the write transaction after another connection
// committed: the check is done by the caller re-reading every page.
func (f *Follower) beginAfterReread(ctx context.Context) (*writeTx, error) {
	if err := f.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&f.dataVersion); err != nil {
		return nil, err
	}
	return f.begin(ctx)
}

// rereadInto replaces tx's hashes with the database's actual ones.
func (f *Follower) rereadInto(ctx context.Context, tx *writeTx) error {
	rows, err := f.conn.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return err
	}
	defer rows.Close()
	lock := segment.LockPage(f.pageSize)
	tx.hashes, tx.sum = tx.hashes[:0], 0
	for rows.Next() {
		var p uint32
		var data []byte
		if err := rows.Scan(&p, &data); err != nil {
			return err
		}
		var h uint64
		if p != lock {
			h = f.pageHash(p, data)
		}
		tx.hashes = append(tx.hashes, h)
		tx.sum ^= segment.Checksum(h)
	}
	return rows.Err()
}

// state is the file beside the database recording the position it holds;
// it is trusted only when the database still has its checksum.
type state struct {
	Generation string    `json:"generation"`
	TxID       uint64    `json:"txid"`
	Checksum   uint64    `json:"checksum"`
	CommitTime time.Time `json:"commit_time"`
	// Counters are Follower.counters, hex; CookieDelta is Follower.delta.
	Counters    string `json:"page1_counters"`
	CookieDelta uint32 `json:"cookie_delta"`
}

func (f *Follower) statePath() string { return f.cfg.Path + "-follow.json" }

func (f *Follower) saveState() {
	pos := f.Position()
	b, _ := json.Marshal(state{Generation: pos.Generation, TxID: pos.TxID, Checksum: uint64(pos.Checksum), CommitTime: pos.CommitTime,
		Counters: hex.EncodeToString(f.counters[:]), CookieDelta: f.delta})
	tmp := f.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		err = os.Rename(tmp, f.statePath())
		if err == nil {
			return
		}
	}
	f.log.Warn("follow: cannot save the position; a restart will re-sync", "path", f.statePath())
}

func loadState(path string) (state, error) {
	var st state
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}
