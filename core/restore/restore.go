package restore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // for the integrity check

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
	"golang.org/x/sync/errgroup"
)

// Options tune a restore.
type Options struct {
	// Parallel is how many objects download at once; zero means 8.
	Parallel int
	// SkipIntegrityCheck skips PRAGMA integrity_check (the checksum is
	// always verified).
	SkipIntegrityCheck bool
	Logger             *slog.Logger
}

// Result is what a restore reached.
type Result struct {
	Generation string
	TxID       uint64
	CommitTime time.Time
	Checksum   segment.Checksum
	Pages      uint32
}

// ErrExists means the output file exists; a restore never overwrites.
var ErrExists = errors.New("output file exists")

// Run restores the target from r into the file out, which must not exist.
// The database is built in a temporary file beside out and renamed into
// place only after its checksum (and, unless skipped, SQLite's integrity
// check) proved it to be the database at the reached position.
func Run(ctx context.Context, r *replica.Replica, t Target, out string, opts Options) (Result, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, err := os.Lstat(out); err == nil {
		return Result{}, fmt.Errorf("%w: %s (a restore never overwrites a file; choose another -o or remove it)", ErrExists, out)
	}
	plan, err := MakePlan(ctx, r, t)
	if err != nil {
		return Result{}, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".restore-")
	if err != nil {
		return Result{}, fmt.Errorf("create temporary directory beside %s: %w", out, err)
	}
	defer os.RemoveAll(tmpDir)

	files, err := download(ctx, r, plan, tmpDir, opts.Parallel)
	if err != nil {
		return Result{}, err
	}
	dbPath := filepath.Join(tmpDir, "db")
	res, err := apply(dbPath, plan, files)
	if err != nil {
		return Result{}, err
	}
	if !opts.SkipIntegrityCheck {
		if err := integrityCheck(ctx, dbPath); err != nil {
			return Result{}, err
		}
	}
	if err := os.Link(dbPath, out); err != nil {
		if errors.Is(err, os.ErrExist) {
			return Result{}, fmt.Errorf("%w: %s appeared during the restore", ErrExists, out)
		}
		return Result{}, fmt.Errorf("move restored database to %s: %w", out, err)
	}
	if err := syncDir(filepath.Dir(out)); err != nil {
		return Result{}, err
	}
	opts.Logger.Info("restored", "generation", res.Generation, "txid", res.TxID, "commit_time", res.CommitTime.Format(time.RFC3339Nano), "output", out)
	return res, nil
}

// download fetches every object of plan into tmpDir, in parallel, each
// verified in full; it returns the local paths in plan order.
func download(ctx context.Context, r *replica.Replica, plan Plan, tmpDir string, parallel int) ([]string, error) {
	files := make([]string, len(plan.Objects))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, o := range plan.Objects {
		files[i] = filepath.Join(tmpDir, fmt.Sprintf("%06d", i))
		g.Go(func() error {
			f, err := os.Create(files[i])
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = r.Download(gctx, o, f)
			return err
		})
	}
	return files, g.Wait()
}

// apply writes the objects' pages into a new database file, checking that
// the chain is unbroken (each object starts from the checksum the previous
// one ended with) and that the result has the checksum the last object
// promises.
func apply(dbPath string, plan Plan, files []string) (Result, error) {
	db, err := os.OpenFile(dbPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Result{}, err
	}
	defer db.Close()
	var last segment.Header
	for i, path := range files {
		h, err := applyObject(db, path)
		if err != nil {
			return Result{}, fmt.Errorf("apply %s: %w", plan.Objects[i], err)
		}
		if i > 0 && h.ChecksumBefore != last.ChecksumAfter {
			return Result{}, fmt.Errorf("%w: %s starts from database checksum %s, but the chain before it ends at %s",
				segment.ErrCorrupt, plan.Objects[i], h.ChecksumBefore, last.ChecksumAfter)
		}
		last = h
	}
	size := int64(last.DBSize) * int64(last.PageSize)
	if err := db.Truncate(size); err != nil {
		return Result{}, err
	}
	sum, err := fileChecksum(db, last.PageSize, last.DBSize)
	if err != nil {
		return Result{}, err
	}
	if sum != last.ChecksumAfter {
		return Result{}, fmt.Errorf("restored database has checksum %s, but txid %d of generation %s has %s: the replica is inconsistent; nothing was written to the output",
			sum, last.MaxTXID, last.Generation, last.ChecksumAfter)
	}
	if err := db.Sync(); err != nil {
		return Result{}, err
	}
	return Result{Generation: last.Generation, TxID: last.MaxTXID, CommitTime: last.LastCommitTime(), Checksum: sum, Pages: last.DBSize}, nil
}

func applyObject(db *os.File, path string) (segment.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return segment.Header{}, err
	}
	defer f.Close()
	r, err := segment.NewReader(f)
	if err != nil {
		return segment.Header{}, err
	}
	ps := int64(r.Header().PageSize)
	for {
		pgno, page, err := r.Next()
		if err == io.EOF {
			return r.Header(), nil
		}
		if err != nil {
			return segment.Header{}, err
		}
		if _, err := db.WriteAt(page, int64(pgno-1)*ps); err != nil {
			return segment.Header{}, err
		}
	}
}

// fileChecksum computes the database checksum of the file's first n pages.
func fileChecksum(f *os.File, pageSize, n uint32) (segment.Checksum, error) {
	var sum segment.Checksum
	page := make([]byte, pageSize)
	lock := segment.LockPage(pageSize)
	for p := uint32(1); p <= n; p++ {
		if p == lock {
			continue
		}
		if _, err := f.ReadAt(page, int64(p-1)*int64(pageSize)); err != nil {
			return 0, fmt.Errorf("read back page %d: %w", p, err)
		}
		sum = sum.AddPage(p, page)
	}
	return sum, nil
}

func integrityCheck(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("integrity check of the restored database: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("the restored database fails PRAGMA integrity_check: %v", problems)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
