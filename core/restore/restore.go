package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/core/segment"
	"github.com/sqlitereplicator/replicator/sdk"
)

// Options tune a restore.
type Options struct {
	// Parallel is how many objects download at once; zero means 8.
	Parallel int
	// Check is what SQLite is asked about the restored database; the
	// zero value is FullCheck.
	Check  Check
	Logger *slog.Logger
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
// check) proved it to be the database at the reached position. Encrypted
// objects are opened with r.Keys; an object whose key is missing fails the
// restore (crypt.ErrKeyRequired or crypt.ErrWrongKey) before anything is
// written to out.
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
	for attempt := 1; ; attempt++ {
		res, err := runOnce(ctx, r, t, out, opts)
		if err == nil || !errors.Is(err, sdk.ErrNotFound) || attempt == planAttempts || ctx.Err() != nil {
			return res, err
		}
		// A daemon's compaction or retention removed a planned object
		// after it was listed; what replaced it is in a new listing.
		opts.Logger.Warn("an object of the plan is gone from the replica (removed by compaction or retention while restoring); planning again",
			"attempt", attempt, "err", err)
	}
}

// planAttempts bounds how often a restore plans again after a planned
// object went missing: a replica that keeps losing objects under a restore
// is not one a restore can trust.
const planAttempts = 3

// runOnce plans the restore and carries it out.
func runOnce(ctx context.Context, r *replica.Replica, t Target, out string, opts Options) (Result, error) {
	plan, err := MakePlan(ctx, r, t)
	if err != nil {
		return Result{}, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".restore-")
	if err != nil {
		return Result{}, fmt.Errorf("create temporary directory beside %s: %w", out, err)
	}
	defer os.RemoveAll(tmpDir)

	dl := download(ctx, r, plan, tmpDir, opts.Parallel) // apply.go
	defer dl.close()
	var check func(context.Context, string) error
	if opts.Check != NoCheck {
		check = opts.Check.run
	}
	dbPath := filepath.Join(tmpDir, "db")
	res, err := apply(ctx, r, dbPath, plan, dl, check)
	if err != nil {
		return Result{}, err
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

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
