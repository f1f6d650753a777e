// Package follow keeps a local read-only copy of a replicated database up
// to date: it restores the latest state, then applies each new segment of
// the replica as one SQLite write transaction through the sqlite_dbpage
// virtual table, so that readers of the local database (ordinary SQLite
// connections in WAL mode, in any process) only ever see states the primary
// committed.
//
// See docs/follow.md for the guarantees and the limits.
package follow

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver

	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/core/sqliteuri"
	"github.com/sqlitereplicator/replicator/sdk"
)

// Config configures a Follower.
type Config struct {
	// Replica is followed; its Keys open encrypted objects.
	Replica *replica.Replica
	// Path is the local database; it is created by a restore when missing.
	Path string
	// Interval is how often the replica is polled; zero means 1s.
	Interval time.Duration
	Logger   *slog.Logger
}

// Position is where the local database is: a committed state of the
// primary.
type Position struct {
	Generation string
	TxID       uint64
	Checksum   segment.Checksum
	Pages      uint32
	CommitTime time.Time
}

// Stats counts what a Follower did.
type Stats struct {
	Position    Position
	Segments    int // segments applied
	Resyncs     int // full re-synchronisations (start-up excluded)
	LocalWrites int // local modifications detected
	Polls       int // LIST requests made by polling
	// LastPoll is when the last poll succeeded; LastErr is the error of
	// the last poll that failed since then (nil when it succeeded).
	LastPoll time.Time
	LastErr  error
	// UploadLag is, for the last segment applied, the time from its
	// upload to the replica (the object's modification time) to its
	// commit to the local database.
	UploadLag time.Duration
}

// ErrFatal marks errors after which following cannot continue.
var ErrFatal = errors.New("follow cannot continue")

// errLocalWrite means another connection committed to the local database.
var errLocalWrite = errors.New("local database modified")

// errMismatch means a segment does not continue from, or does not lead to,
// the checksum it should: the follower re-syncs.
var errMismatch = errors.New("checksum mismatch")

// Follower follows one replica into one local database.
type Follower struct {
	cfg Config
	r   *replica.Replica
	log *slog.Logger

	db   *sql.DB
	conn *sql.Conn

	pageSize    uint32
	hashes      []uint64 // hashes[p-1] is PageHash(p, page p); 0 for the lock page
	sum         segment.Checksum
	dataVersion int64
	// counters are the change counter and version-valid-for fields of
	// page 1 (bytes 24-27 and 92-95) as the replica has them. SQLite
	// rewrites both on every commit that writes page 1, so the local file
	// holds its own values there; every page hash of page 1 is taken with
	// these in their place.
	counters [8]byte
	// delta is what the local schema cookie (page 1, bytes 40-43) adds to
	// the replica's: zero after a restore, one more than the previous
	// local cookie after each re-sync, so that no reader ever keeps a
	// schema cached under a cookie that now means another schema.
	delta uint32

	// uploaded holds the modification times of the last listing's
	// objects, by key, for UploadLag.
	uploaded map[string]time.Time

	mu    sync.Mutex
	stats Stats
}

// New returns a Follower; Run does the work.
func New(cfg Config) *Follower {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Follower{cfg: cfg, r: cfg.Replica, log: cfg.Logger.With("follow", cfg.Path)}
}

// Stats returns a copy of the counters and the current position.
func (f *Follower) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Position returns the position of the local database.
func (f *Follower) Position() Position { return f.Stats().Position }

func (f *Follower) update(fn func(s *Stats)) {
	f.mu.Lock()
	fn(&f.stats)
	f.mu.Unlock()
}

// Run follows until ctx is done (it then returns nil) or a fatal error; an
// object whose encryption key is not in the replica's Keys is one.
// Transient errors (the replica unreachable, a corrupt download) are
// logged and retried at the next interval.
func (f *Follower) Run(ctx context.Context) error {
	if err := f.start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer f.close()
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		err := f.Poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		f.update(func(s *Stats) {
			if s.LastErr = err; err == nil {
				s.LastPoll = time.Now()
			}
		})
		// A missing key does not come back by waiting: the user must
		// restart with it (docs/encryption.md: give readers a new key
		// before the daemon writes with it).
		if errors.Is(err, ErrFatal) || errors.Is(err, crypt.ErrKeyRequired) || errors.Is(err, crypt.ErrWrongKey) {
			return err
		}
		if err != nil {
			f.log.Warn("follow: poll failed; retrying at the next interval", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// start restores the database when it does not exist, opens it, and
// establishes the position: from the state file when the database still
// has the checksum recorded there, else by a re-sync.
func (f *Follower) start(ctx context.Context) error {
	restored := false
	var res restore.Result
	for {
		if _, err := os.Lstat(f.cfg.Path); err == nil {
			break
		}
		// A WAL left by a removed database would be applied to the new one.
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := os.Remove(f.cfg.Path + suffix); err == nil {
				f.log.Warn("follow: removed a stale file of a removed database", "path", f.cfg.Path+suffix)
			}
		}
		var err error
		res, err = restore.Run(ctx, f.r, restore.Target{}, f.cfg.Path, restore.Options{Logger: f.cfg.Logger})
		if err == nil {
			restored = true
			break
		}
		if !errors.Is(err, restore.ErrNoReplica) {
			return err
		}
		f.log.Info("follow: the replica holds nothing yet; waiting", "replica", f.r.Name)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.cfg.Interval):
		}
	}
	db, err := sql.Open("sqlite", sqliteuri.For(f.cfg.Path, url.Values{"_pragma": {"journal_mode(WAL)", "busy_timeout(5000)"}}))
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return err
	}
	f.db, f.conn = db, conn
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		f.close()
		return err
	}
	if mode != "wal" {
		f.close()
		return fmt.Errorf("%w: %s is in journal mode %q and cannot be switched to WAL", ErrFatal, f.cfg.Path, mode)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&f.pageSize); err != nil {
		f.close()
		return err
	}
	// The replica's page-1 counters: a restored file has them; a resumed
	// one's are in the state file.
	var page1 []byte
	if err := conn.QueryRowContext(ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = 1").Scan(&page1); err != nil || len(page1) < 100 {
		f.close()
		return fmt.Errorf("read page 1 of %s: %v", f.cfg.Path, err)
	}
	f.counters = getCounters(page1)
	st, stErr := loadState(f.statePath())
	if !restored && stErr == nil {
		c, err := hex.DecodeString(st.Counters)
		if err != nil || len(c) != len(f.counters) {
			stErr = fmt.Errorf("bad page1_counters %q", st.Counters)
		} else {
			copy(f.counters[:], c)
			f.delta = st.CookieDelta
		}
	}
	if err := f.readAll(ctx); err != nil {
		f.close()
		return err
	}
	if restored {
		if f.sum != res.Checksum {
			f.close()
			return fmt.Errorf("%s has checksum %s right after its restore, want %s", f.cfg.Path, f.sum, res.Checksum)
		}
		f.setPosition(Position{Generation: res.Generation, TxID: res.TxID, Checksum: res.Checksum, Pages: res.Pages, CommitTime: res.CommitTime})
		f.saveState()
		f.log.Info("follow: restored", "generation", res.Generation, "txid", res.TxID, "checksum", res.Checksum.String())
		return nil
	}
	if stErr == nil && segment.Checksum(st.Checksum) == f.sum {
		f.setPosition(Position{Generation: st.Generation, TxID: st.TxID, Checksum: f.sum, Pages: uint32(len(f.hashes)), CommitTime: st.CommitTime})
		f.log.Info("follow: resuming", "generation", st.Generation, "txid", st.TxID, "checksum", f.sum.String())
		return nil
	}
	f.log.Warn("follow: the existing database is at no known position of the replica (no state file, or it changed since); re-syncing it",
		"checksum", f.sum.String(), "state_err", stErr)
	if err := f.resync(ctx); err != nil {
		f.close()
		return err
	}
	return nil
}

func (f *Follower) close() {
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	if f.db != nil {
		f.db.Close()
		f.db = nil
	}
}

func (f *Follower) setPosition(p Position) {
	f.update(func(s *Stats) { s.Position = p })
}

// readAll recomputes every page hash and the checksum from the database,
// and records the connection's data_version. It runs in a read
// transaction of its own unless one is open.
func (f *Follower) readAll(ctx context.Context) error {
	// One read transaction, so that data_version belongs to the pages read.
	if _, err := f.conn.ExecContext(ctx, "BEGIN"); err != nil {
		// A BEGIN cut short by cancellation may still have opened it.
		_, _ = f.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("begin reading %s: %w", f.cfg.Path, err)
	}
	defer f.conn.ExecContext(context.WithoutCancel(ctx), "COMMIT")
	rows, err := f.conn.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return fmt.Errorf("read %s: %w", f.cfg.Path, err)
	}
	defer rows.Close()
	var hashes []uint64
	var sum segment.Checksum
	lock := segment.LockPage(f.pageSize)
	for rows.Next() {
		var p uint32
		var data []byte
		if err := rows.Scan(&p, &data); err != nil {
			return err
		}
		if p != uint32(len(hashes))+1 {
			return fmt.Errorf("read %s: page %d follows page %d", f.cfg.Path, p, len(hashes))
		}
		var h uint64
		if p != lock {
			if len(data) != int(f.pageSize) {
				return fmt.Errorf("read %s: page %d has %d bytes, want %d", f.cfg.Path, p, len(data), f.pageSize)
			}
			h = f.pageHash(p, data)
		}
		hashes = append(hashes, h)
		sum ^= segment.Checksum(h)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	f.hashes, f.sum = hashes, sum
	return f.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&f.dataVersion)
}

// changedLocally reports whether another connection committed to the
// database since the follower last looked (PRAGMA data_version changes on
// every commit by any other connection, in any process).
func (f *Follower) changedLocally(ctx context.Context) (bool, error) {
	var v int64
	if err := f.conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return false, err
	}
	return v != f.dataVersion, nil
}

// checkLocal verifies, when another connection committed since the last
// look, that the database still has the expected checksum. A mismatch is a
// local write: it is reported and repaired by a re-sync.
func (f *Follower) checkLocal(ctx context.Context) error {
	changed, err := f.changedLocally(ctx)
	if err != nil || !changed {
		return err
	}
	want := f.sum
	if err := f.readAll(ctx); err != nil {
		return err
	}
	if f.sum == want {
		f.log.Debug("follow: another connection committed, but the database is unchanged")
		return nil
	}
	return f.localWrite(ctx, want)
}

func (f *Follower) localWrite(ctx context.Context, want segment.Checksum) error {
	pos := f.Position()
	f.update(func(s *Stats) { s.LocalWrites++ })
	f.log.Error("follow: LOCAL WRITE DETECTED: the local database was modified by another writer; it must be read-only. Re-syncing it from the replica",
		"path", f.cfg.Path, "checksum", f.sum.String(), "expected", want.String(), "generation", pos.Generation, "txid", pos.TxID)
	return f.resync(ctx)
}

// Poll makes one LIST of what is new and applies it. Start already ran.
func (f *Follower) Poll(ctx context.Context) error {
	if err := f.checkLocal(ctx); err != nil {
		return err
	}
	pos := f.Position()
	objs, err := f.list(ctx, pos)
	if err != nil {
		return err
	}
	// A newer generation with a snapshot replaces ours.
	newest := ""
	for _, o := range objs {
		if o.Generation > pos.Generation && o.Snapshot() && o.Generation > newest {
			newest = o.Generation
		}
	}
	if newest != "" {
		f.log.Info("follow: the primary started a new generation; re-syncing", "from", pos.Generation, "to", newest)
		return f.resync(ctx)
	}
	applied, pages := 0, 0
	start := pos.TxID
	defer func() {
		// One summary line per poll that moved forward, even when a later
		// segment of the same poll failed.
		if applied == 0 {
			return
		}
		pos := f.Position()
		f.saveState()
		f.log.Info("follow: applied", "generation", pos.Generation, "txid", pos.TxID, "from_txid", start,
			"segments", applied, "pages", pages, "committed", pos.CommitTime.UTC().Format(time.RFC3339Nano), "checksum", pos.Checksum.String())
	}()
	for {
		pos = f.Position()
		var best *replica.Object
		for i, o := range objs {
			if o.Generation == pos.Generation && !o.Snapshot() && o.Min == pos.TxID+1 && (best == nil || o.Max > best.Max) {
				best = &objs[i]
			}
		}
		if best == nil {
			break
		}
		n, err := f.applySegment(ctx, *best)
		if errors.Is(err, errLocalWrite) {
			// Another connection committed: find out whether it changed
			// anything (checkLocal reports and repairs it).
			return f.checkLocal(ctx)
		}
		if errors.Is(err, errMismatch) {
			f.log.Error("follow: the replica's chain does not match the local database; re-syncing", "err", err)
			return f.resync(ctx)
		}
		if err != nil {
			return err
		}
		applied++
		pages += n
		if up, ok := f.uploaded[best.Key]; ok {
			f.update(func(s *Stats) { s.UploadLag = time.Since(up) })
		}
	}
	if applied > 0 {
		return nil
	}
	// Nothing continues our chain, but a later snapshot exists: the
	// primary's uploader skipped ahead (a replica that fell behind gets a
	// fresh snapshot).
	for _, o := range objs {
		if o.Generation == pos.Generation && o.Snapshot() && o.Min > pos.TxID {
			f.log.Info("follow: no segment continues from our position, but a later snapshot exists; re-syncing",
				"generation", pos.Generation, "txid", pos.TxID, "snapshot", o.Min)
			return f.resync(ctx)
		}
	}
	return nil
}

// cursor is the key after which new objects of pos's chain appear: any
// level-0 segment starting after pos.TxID sorts after the (impossible)
// name of segment pos.TxID-pos.TxID. Keys after it under "generations/"
// are the new level-0 segments, the higher levels and snapshots of the
// generation, and every newer generation.
func cursor(pos Position) string {
	if pos.TxID == 0 {
		return "generations/" + pos.Generation + "/"
	}
	k, err := segment.SegmentKey(pos.Generation, 0, pos.TxID, pos.TxID)
	if err != nil {
		return "generations/" + pos.Generation + "/"
	}
	return k
}

// list is the one LIST request of a poll.
func (f *Follower) list(ctx context.Context, pos Position) ([]replica.Object, error) {
	f.update(func(s *Stats) { s.Polls++ })
	var objs []replica.Object
	f.uploaded = map[string]time.Time{}
	err := f.r.Storage().List(ctx, "generations/", cursor(pos), func(oi sdk.ObjectInfo) error {
		if o, ok := parseKey(oi.Key); ok {
			o.Size = oi.Size
			objs = append(objs, o)
			if !oi.ModTime.IsZero() {
				f.uploaded[oi.Key] = oi.ModTime
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", f.r.Name, err)
	}
	return objs, nil
}

// parseKey parses generations/<gen>/snapshots/<name> and
// generations/<gen>/segments/<level>/<name>.
func parseKey(key string) (replica.Object, bool) {
	parts := strings.Split(strings.TrimPrefix(key, "generations/"), "/")
	if len(parts) < 3 || segment.ValidateGeneration(parts[0]) != nil {
		return replica.Object{}, false
	}
	o := replica.Object{Generation: parts[0], Key: key}
	switch {
	case parts[1] == "snapshots" && len(parts) == 3:
		txid, err := segment.ParseSnapshotName(parts[2])
		if err != nil {
			return replica.Object{}, false
		}
		o.Level, o.Min, o.Max = -1, txid, txid
	case parts[1] == "segments" && len(parts) == 4:
		level, err := strconv.Atoi(parts[2])
		if err != nil || level < 0 || level > segment.MaxLevel || strconv.Itoa(level) != parts[2] {
			return replica.Object{}, false
		}
		min, max, err := segment.ParseSegmentName(parts[3])
		if err != nil {
			return replica.Object{}, false
		}
		o.Level, o.Min, o.Max = level, min, max
	default:
		return replica.Object{}, false
	}
	return o, true
}
