package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sqlitereplicator/replicator/core/config"
	"github.com/sqlitereplicator/replicator/core/crypt"
	"github.com/sqlitereplicator/replicator/core/localstate"
	"github.com/sqlitereplicator/replicator/core/restore"
	"github.com/sqlitereplicator/replicator/sdk"
)

// Exit codes of verify, beyond exitOK, exitFailure and exitUsage.
const (
	exitReplicaInconsistent = 3
	exitReplicaDiffers      = 4
	exitReplicaBehind       = 5
)

const verifyHelp = `
Restores the replica's latest position into a temporary directory (under
$TMPDIR), which proves the replica's checksum chain and PRAGMA
integrity_check, and deletes it again. With a DB_PATH (and -config naming its
replicas) it then compares the restored position with the position the
daemon last captured (position.json in the state directory, read without
locking it, so the daemon may be running): at the same generation and txid
the database checksums must be equal. With a REPLICA_URL only the replica is
checked. It prints the generation, txid and checksum it verified.

A replica that lags a running daemon by a sync interval reports "behind";
run verify again, or pass -allow-behind.

Exit codes:
  0  verified
  1  failure: the replica or the local state could not be read, no replica
  2  usage error
  3  replica inconsistent: the restore failed its checksum chain or
     PRAGMA integrity_check
  4  replica differs from the database at txid N (or is ahead of it, or on a
     newer generation)
  5  replica is behind the database (unless -allow-behind)
`

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "verify", "[-allow-behind] (REPLICA_URL | -config FILE [-replica NAME] [-state-dir DIR] DB_PATH)")
	configPath := fs.String("config", "", "config file; the argument is then a database path")
	replicaName := fs.String("replica", "", "with -config: the replica to verify (default: the first)")
	stateDir := fs.String("state-dir", "", "with a DB_PATH: the daemon's state directory (default: beside the database)")
	allowBehind := fs.Bool("allow-behind", false, "a replica behind the database is not an error (it is still checked for consistency)")
	parallel := fs.Int("parallel", 8, "objects downloaded at once")
	keys := addKeyFlags(fs)
	usage := fs.Usage
	fs.Usage = func() { usage(); fmt.Fprint(e.stderr, verifyHelp) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("need exactly one REPLICA_URL or (with -config) DB_PATH")
	}
	arg := fs.Arg(0)
	if *stateDir != "" && config.IsURL(arg) {
		return usagef("-state-dir goes with a DB_PATH, not a replica URL")
	}
	rc, err := replicaArg(e, arg, *configPath, *replicaName)
	if err != nil {
		return err
	}
	r, closeFn, err := openReplica(ctx, e, rc)
	if err != nil {
		return err
	}
	defer closeFn()
	if err := keys.apply(r); err != nil {
		return err
	}

	tmp, err := os.MkdirTemp("", "replicator-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	res, err := restore.Run(ctx, r, restore.Target{}, filepath.Join(tmp, "db"), restore.Options{Parallel: *parallel, Logger: e.log})
	if err != nil {
		if restoreInconsistent(ctx, err) {
			return exitError{exitReplicaInconsistent, fmt.Errorf("replica %s is inconsistent: %w", rc.Name, err)}
		}
		return keyHint(err)
	}
	fmt.Fprintf(e.stdout, "replica %s: generation %s, txid %d, checksum %s: restores consistently and passes integrity_check\n",
		rc.Name, res.Generation, res.TxID, res.Checksum)
	if config.IsURL(arg) {
		return nil
	}

	// Read the position after the restore: the daemon only ever moves it
	// ahead of what the replica holds, so a replica "ahead" is a real
	// difference, never a race.
	dir := *stateDir
	if dir == "" {
		dir = localstate.DefaultPath(arg)
	}
	pos, err := readPosition(filepath.Join(dir, "position.json"))
	if err != nil {
		return err
	}
	switch {
	case res.Generation == pos.Generation && res.TxID == pos.TxID:
		if uint64(res.Checksum) != pos.Checksum {
			return exitError{exitReplicaDiffers, fmt.Errorf("replica differs from the database at txid %d: replica checksum %s, database checksum %016x (generation %s)",
				res.TxID, res.Checksum, pos.Checksum, res.Generation)}
		}
		fmt.Fprintf(e.stdout, "equals the database at generation %s, txid %d\n", pos.Generation, pos.TxID)
		return nil
	case res.Generation == pos.Generation && res.TxID > pos.TxID:
		return exitError{exitReplicaDiffers, fmt.Errorf("replica differs from the database: replica txid %d is ahead of database txid %d (generation %s)",
			res.TxID, pos.TxID, pos.Generation)}
	case res.Generation > pos.Generation:
		// Generation names start with their UTC creation time.
		return exitError{exitReplicaDiffers, fmt.Errorf("replica differs from the database: replica generation %s is newer than the database's %s",
			res.Generation, pos.Generation)}
	}
	msg := fmt.Sprintf("replica is behind: replica txid %d, database txid %d", res.TxID, pos.TxID)
	if res.Generation != pos.Generation {
		msg = fmt.Sprintf("replica is behind: replica generation %s txid %d, database generation %s txid %d", res.Generation, res.TxID, pos.Generation, pos.TxID)
	}
	if *allowBehind {
		fmt.Fprintf(e.stdout, "%s (allowed by -allow-behind)\n", msg)
		return nil
	}
	return exitError{exitReplicaBehind, errors.New(msg)}
}

// restoreInconsistent tells a restore that failed on the replica's content
// from one that failed to reach it (storage errors, cancellation, no replica).
func restoreInconsistent(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, restore.ErrNoReplica) ||
		errors.Is(err, crypt.ErrKeyRequired) || errors.Is(err, crypt.ErrWrongKey) {
		return false
	}
	switch sdk.CodeOf(err) {
	case sdk.Unknown, sdk.NotFound:
		return true
	}
	return false
}

// readPosition reads the daemon's position.json without locking the state
// directory (the running daemon holds the lock); it is replaced atomically,
// so a read sees a whole version.
func readPosition(path string) (localstate.Position, error) {
	var pos localstate.Position
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return pos, fmt.Errorf("no local position at %s: has this database been replicated here? (give -state-dir, or the replica URL to check only the replica)", path)
	}
	if err != nil {
		return pos, err
	}
	if err := json.Unmarshal(b, &pos); err != nil {
		return pos, fmt.Errorf("%s: %w", path, err)
	}
	return pos, nil
}
